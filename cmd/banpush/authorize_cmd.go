package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
)

// AuthorizeCmd prints, or installs, the authorized_keys line for a peer.
type AuthorizeCmd struct {
	Peer    string   `help:"Name of the pushing peer (its name in the pushing side's inventory is a good choice)." required:"" placeholder:"NAME"`
	Log     string   `help:"Absolute path of the log the local fail2ban watches." required:"" placeholder:"PATH"`
	From    []string `help:"Accept the key only from these addresses (CIDR or address; repeat or separate with commas): sshd's from= option." placeholder:"CIDR"`
	Binary  string   `help:"Absolute path of banpush on this host (default: this executable)." placeholder:"PATH"`
	Install string   `help:"Write the line into the banpush block of this authorized_keys file instead of printing it." placeholder:"FILE"`
	PolicyFlags
	KeyFile string `arg:"" help:"The pushing peer's public key file (one key, e.g. id_ed25519.pub)." placeholder:"PUBKEY_FILE"`
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
	const hintFlags = "run 'banpush authorize --help' for the flags"
	if !record.ValidName(c.Peer) {
		return errorf(exitUsage, "peer names are 1 to 64 characters from [A-Za-z0-9._-]", "--peer: unsafe peer name")
	}
	if !filepath.IsAbs(c.Log) {
		return errorf(exitUsage, "give the full path, e.g. /var/log/banpush/received.log", "--log must be an absolute path")
	}
	pol, err := c.policy()
	if err != nil {
		return errorf(exitUsage, hintFlags, "%v", err)
	}
	args := []string{"--log", filepath.Clean(c.Log)}
	for _, p := range pol.Ignore {
		args = append(args, "--ignore", prefixString(p))
	}
	args = append(args, "--max-burst", strconv.Itoa(c.MaxBurst), "--max-per-minute", strconv.Itoa(c.MaxPerMinute))
	if c.AllowPrivate {
		args = append(args, "--allow-private")
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
	line, err := authkeys.Line(authkeys.Spec{Binary: filepath.Clean(bin), Peer: c.Peer, Args: args, From: from, KeyFile: key})
	if err != nil {
		return errorf(exitFailure, "the key file must hold exactly one OpenSSH public key; paths must be plain (no quotes or backslashes)", "%s: %v", c.KeyFile, err)
	}
	if c.Install == "" {
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	}
	return installLine(env, c.Install, c.Peer, line)
}

// prefixString writes a single-address prefix as the bare address.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func installLine(env *Env, path, peer, line string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return errorf(exitFailure, "create it first, owned by the receiving account: install -m 600 -o banpush -g banpush /dev/null "+path,
			"--install %s: no such file", path)
	}
	if err != nil {
		return err
	}
	data, err := authkeys.Install(old, peer, line)
	if err != nil {
		return errorf(exitFailure, "fix the banpush block of "+path+" by hand, then run again", "%s: %v", path, err)
	}
	if err := fsutil.WriteAtomic(path, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	verb := "added"
	if strings.Contains(string(old), "banpush-peer="+peer+"\n") {
		verb = "replaced"
	}
	fmt.Fprintf(env.Stderr, "banpush: %s the line for peer %s in %s\n", verb, peer, path)
	return nil
}
