package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
)

// AuthorizeCmd prints, or installs, the authorized_keys line for a peer.
type AuthorizeCmd struct {
	ReceiveArgs
	From    []string `help:"Accept the key only from these addresses (CIDR or address; repeat or separate with commas): sshd's from= option." placeholder:"CIDR"`
	Binary  string   `help:"Absolute path of banpush on this host (default: this executable)." placeholder:"PATH"`
	Install string   `help:"Write the line into the banpush block of this authorized_keys file instead of printing it." placeholder:"FILE"`
	KeyFile string   `arg:"" help:"The pushing peer's public key file (one key, e.g. id_ed25519.pub)." placeholder:"PUBKEY_FILE"`
}

// Help explains the line and how to use it.
func (c *AuthorizeCmd) Help() string {
	return `Run this on the receiving host, once per pushing peer, as the account that
receives (or as root with --install). The line pins the peer's key to
'banpush receive --peer NAME ...' with every SSH feature turned off:

  restrict,no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,
  no-user-rc[,from="CIDR"],command="/usr/bin/banpush receive --peer NAME
  --log PATH ..." ssh-ed25519 AAAA... banpush-peer=NAME

sshd runs the command through the account's shell, so every argument is
shell-quoted. With --install FILE the line goes into a marked block at the end
of FILE ("# BEGIN banpush" ... "# END banpush"), replacing that peer's earlier
line; every other line of the file is kept, and the file is rewritten
atomically with mode 0600.

Examples:
  banpush authorize --peer web1 --log /var/log/banpush/received.log \
      --from 192.0.2.10 web1.pub
  banpush authorize --peer web1 --log /var/log/banpush/received.log \
      --ignore 198.51.100.0/24 --install ~banpush/.ssh/authorized_keys web1.pub`
}

// Run prints or installs the line.
func (c *AuthorizeCmd) Run(env *Env) error {
	args, _, err := c.check(env.Now)
	if err != nil {
		return argError(err)
	}
	var from []string
	for _, f := range c.From {
		p, err := record.ParsePrefix(f)
		if err != nil {
			return errorf(exitUsage, "--from takes addresses or CIDR prefixes, e.g. 192.0.2.10 or 2001:db8::/64", "--from %q: %v", f, err)
		}
		from = append(from, prefixString(p))
	}
	bin := c.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return errorf(exitFailure, "give the path with --binary", "cannot find this executable: %v", err)
		}
	}
	if !filepath.IsAbs(bin) {
		return errorf(exitUsage, "give the full path, e.g. --binary /usr/local/bin/banpush", "--binary must be an absolute path")
	}
	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return errorf(exitFailure, "give the pushing peer's public key file, e.g. /root/.ssh/banpush_ed25519.pub copied from it", "%v", err)
	}
	line, err := authkeys.Line(authkeys.Spec{Binary: filepath.Clean(bin), Args: args.argv(), Peer: args.Peer, From: from, KeyFile: key})
	if err != nil {
		return errorf(exitFailure, "the key file must hold exactly one OpenSSH public key; paths must be plain (no quotes or backslashes)", "%s: %v", c.KeyFile, err)
	}
	if c.Install == "" {
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	}
	return installLine(env, c.Install, c.Peer, line)
}

// argError turns a receive argument that check refused into a usage
// error with a hint.
func argError(err error) error {
	var ae *receive.ArgError
	if !errors.As(err, &ae) {
		return errorf(exitUsage, "run 'banpush authorize --help' for the flags", "%v", err)
	}
	switch ae.Flag {
	case "--peer":
		return errorf(exitUsage, "peer names are "+ae.Rule, "--peer: unsafe peer name")
	case "--log":
		return errorf(exitUsage, "give the full path, e.g. /var/log/banpush/received.log", "--log must be an absolute path")
	}
	return errorf(exitUsage, "run 'banpush authorize --help' for the flags", "%s", strings.TrimPrefix(ae.Error(), "receive: "))
}

func installLine(env *Env, path, peer, line string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	replaced, err := authkeys.InstallFile(abs, peer, line)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errorf(exitFailure, "create it first, owned by the receiving account: install -m 600 -o banpush -g banpush /dev/null "+path,
			"--install %s: no such file", path)
	case errors.Is(err, authkeys.ErrBlock):
		return errorf(exitFailure, "fix the banpush block of "+path+" by hand, then run again", "%s: %v", path, err)
	case err != nil:
		return withHint(err, exitFailure, "give the real path of the file, a plain file of the receiving account; banpush follows no link that another account could change")
	}
	verb := "added"
	if replaced {
		verb = "replaced"
	}
	fmt.Fprintf(env.Stderr, "banpush: %s the line for peer %s in %s\n", verb, peer, path)
	return nil
}
