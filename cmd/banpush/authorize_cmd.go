package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
)

// AuthorizeCmd prints, or installs, the authorized_keys line for a peer,
// or for every peer a user CA signed.
type AuthorizeCmd struct {
	ReceiveFlags
	CertAuthority string   `help:"Write a cert-authority line instead: it lets in every pushing host whose key this user CA (its public key file) signed for --principal, and names each after its certificate's key ID. No --peer and no key file with it." placeholder:"CA_PUBKEY_FILE"`
	Principal     []string `help:"With --cert-authority: the principal a pushing host's certificate must carry (default: banpush; repeat for several)." placeholder:"NAME"`
	From          []string `help:"Accept the key only from these addresses (CIDR or address; repeat or separate with commas): sshd's from= option." placeholder:"CIDR"`
	Binary        string   `help:"Absolute path of banpush on this host (default: this executable)." placeholder:"PATH"`
	Install       string   `help:"Write the line into the banpush block of this authorized_keys file instead of printing it." placeholder:"FILE"`
	DropOtherCAs  bool     `name:"drop-other-cas" help:"With --cert-authority and --install: remove from the banpush block the lines of every other user CA (the old CA, at the end of a rotation), in the same rewrite of the file."`
	DryRun        bool     `name:"dry-run" help:"With --install: read the file and check everything --install would, say what it would change, and write nothing."`
	KeyFile       string   `arg:"" optional:"" help:"The pushing peer's public key file (one key, e.g. id_ed25519.pub); not with --cert-authority." placeholder:"PUBKEY_FILE"`
}

// Help explains the line and how to use it.
func (c *AuthorizeCmd) Help() string {
	return `Run this on the receiving host, once per pushing peer, as the account that
receives (or as root with --install). The line pins the peer's key to
'banpush receive --peer NAME ...' with every SSH feature turned off:

  restrict,no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,
  no-user-rc[,from="CIDR"],command="/usr/local/bin/banpush receive --peer NAME
  --log PATH ..." ssh-ed25519 AAAA... banpush-peer=NAME

sshd runs the command through the account's shell, so every argument is
shell-quoted. With --install FILE the line goes into a marked block at the end
of FILE ("# BEGIN banpush" ... "# END banpush"), replacing that peer's earlier
line; every other line of the file is kept, and the file is rewritten
atomically with mode 0600.

With --cert-authority CA.pub, one line serves a whole fleet: sshd lets in
any key the user CA signed for the principal (banpush by default), within the
certificate's validity and unless sshd's RevokedKeys lists it, and the
receiver names the peer after the certificate's key ID, which sshd exposes to
it (ExposeAuthInfo yes for the account, as in contrib/sshd/banpush.conf):

  cert-authority,principals="banpush",restrict,...,command="/usr/local/bin/banpush
  receive --peer-from-cert --log PATH ..." ssh-ed25519 AAAA...
  banpush-ca=SHA256:...

When a fleet moves to a new user CA, the old CA's line stays (it has another
mark) and authorize warns about it; once every host has a certificate from
the new CA, --drop-other-cas removes the old lines in the same rewrite.

Sign each pushing host's key with:
  ssh-keygen -s user_ca -I HOSTNAME -n banpush -V +52w id_ed25519.pub
The key ID names the peer in the log and keys its rate limit: give every
host its own. Per-key lines and cert-authority lines can share one file.

With --trust quorum the peer does not ban here on its own: its addresses are
written as reports, and once --quorum N distinct quorum peers reported an
address within --quorum-window, the receiver writes a quorum line that the
banpush-quorum jail (contrib/fail2ban/jail.d/banpush-quorum.conf) bans on.
Use it for peers you trust less, or for all of them; give every quorum line
of one log the same N and window.

Examples:
  banpush authorize --peer web1 --log /var/log/banpush/received.log \
      --from 192.0.2.10 web1.pub
  banpush authorize --peer web1 --log /var/log/banpush/received.log \
      --ignore 198.51.100.0/24 --install ~banpush/.ssh/authorized_keys web1.pub
  banpush authorize --cert-authority /etc/banpush/user_ca.pub \
      --log /var/log/banpush/received.log --install ~banpush/.ssh/authorized_keys`
}

// Run prints or installs the line.
func (c *AuthorizeCmd) Run(env *Env) error {
	if err := c.form(); err != nil {
		return err
	}
	args, _, err := c.args().Check(env.Now)
	if err != nil {
		return argError(err)
	}
	var from []string
	for _, f := range c.From {
		p, err := record.ParsePrefix(f)
		if err != nil {
			return errorf(exitUsage, "--from takes addresses or CIDR prefixes, e.g. 192.0.2.10 or 2001:db8::/64", "--from %q: %v", f, err)
		}
		from = append(from, record.FormatPrefix(p))
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
	keyFile, what := c.KeyFile, "the pushing peer's public key file, e.g. /root/.ssh/banpush_ed25519.pub copied from it"
	if c.CertAuthority != "" {
		keyFile, what = c.CertAuthority, "the user CA's public key file (user_ca.pub), never its private key"
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return errorf(exitFailure, "give "+what, "%v", err)
	}
	line, mark, err := authkeys.Line(authkeys.Spec{Binary: filepath.Clean(bin), Args: args.Argv(), Peer: args.Peer, From: from, KeyFile: key,
		CertAuthority: c.CertAuthority != "", Principals: c.Principal})
	if err != nil {
		return errorf(exitFailure, "the key file must hold exactly one OpenSSH public key; paths must be plain (no quotes or backslashes)", "%s: %v", keyFile, err)
	}
	if c.Install == "" {
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	}
	whose := "peer " + args.Peer
	if c.CertAuthority != "" {
		whose = "the user CA " + strings.TrimPrefix(mark, "banpush-ca=")
	}
	return installLine(env, c.Install, mark, whose, line, c.DropOtherCAs, c.DryRun)
}

// form checks that the flags say one kind of line: one peer's key, or a
// user CA's.
func (c *AuthorizeCmd) form() error {
	switch {
	case c.PeerFromCert:
		return errorf(exitUsage, "give the user CA with --cert-authority CA.pub: authorize then writes --peer-from-cert into the line", "--peer-from-cert is for 'banpush receive'")
	case c.CertAuthority != "" && c.KeyFile != "":
		return errorf(exitUsage, "a cert-authority line trusts the CA, not one key: leave out "+c.KeyFile, "give either a key file or --cert-authority, not both")
	case c.CertAuthority != "" && c.Peer != "":
		return errorf(exitUsage, "with --cert-authority each peer is named after its certificate's key ID (ssh-keygen -I NAME): leave out --peer", "--peer and --cert-authority do not go together")
	case c.DryRun && c.Install == "":
		return errorf(exitUsage, "give the file: --install FILE --dry-run (without --install, authorize only prints the line)", "--dry-run goes with --install")
	case c.DropOtherCAs && (c.CertAuthority == "" || c.Install == ""):
		return errorf(exitUsage, "give the CA to keep and the file: --cert-authority CA.pub --install FILE --drop-other-cas", "--drop-other-cas goes with --cert-authority and --install")
	case c.CertAuthority == "" && len(c.Principal) > 0:
		return errorf(exitUsage, "--principal goes with --cert-authority CA.pub", "--principal without --cert-authority")
	case c.CertAuthority == "" && c.KeyFile == "":
		return errorf(exitUsage, "give the pushing peer's public key file (and --peer NAME), or a user CA with --cert-authority CA.pub", "no key file")
	case c.CertAuthority == "" && c.Peer == "":
		return errorf(exitUsage, "name the pushing peer, e.g. --peer web1 (its name in its own inventory is a good choice)", "--peer is required with a key file")
	}
	c.PeerFromCert = c.CertAuthority != ""
	return nil
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

// installLine puts line into the authorized_keys file at path, through
// authkeys.EditFile (no link of the account's is followed, nothing is
// done by path). For a user CA's line, it names the other user CAs the
// file still trusts, or with dropOthers removes their lines in the same
// rewrite. With dryRun it reads the file the same way, says what it would
// change, and writes nothing.
func installLine(env *Env, path, mark, whose, line string, dropOthers, dryRun bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	var replaced, unchanged bool
	var dropped, others []string
	edit := func(old []byte) ([]byte, error) {
		replaced = strings.Contains(string(old), " "+mark+"\n")
		data, err := authkeys.Install(old, mark, line)
		if err == nil && strings.HasPrefix(mark, "banpush-ca=") {
			if dropOthers {
				data, dropped, err = authkeys.DropOtherCAs(data, mark)
			} else {
				others = authkeys.OtherCAs(data, mark)
			}
		}
		unchanged = err == nil && bytes.Equal(old, data)
		return data, err
	}
	if dryRun {
		var old []byte
		if old, err = authkeys.ReadFile(abs); err == nil {
			_, err = edit(old)
		}
	} else {
		err = authkeys.EditFile(abs, edit)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errorf(exitFailure, "create it first, owned by the receiving account: banpush setup-account (or install -m 600 -o banpush -g banpush /dev/null "+path+")",
			"--install %s: no such file", path)
	case errors.Is(err, authkeys.ErrBlock):
		return errorf(exitFailure, "fix the banpush block of "+path+" by hand, then run again", "%s: %v", path, err)
	case err != nil:
		return withHint(err, exitFailure, "give the real path of the file, a plain file of the receiving account; banpush follows no link that another account could change")
	}
	verb, drop := "added", "removed"
	switch {
	case unchanged && dryRun:
		fmt.Fprintf(env.Stderr, "banpush: the line for %s in %s is already as given: --install would change nothing\n", whose, path)
	case unchanged:
		fmt.Fprintf(env.Stderr, "banpush: the line for %s in %s is already as given: nothing changed\n", whose, path)
	default:
		switch {
		case dryRun && replaced:
			verb, drop = "would replace", "would remove"
		case dryRun:
			verb, drop = "would add", "would remove"
		case replaced:
			verb = "replaced"
		}
		fmt.Fprintf(env.Stderr, "banpush: %s the line for %s in %s\n", verb, whose, path)
	}
	keep := strings.TrimPrefix(mark, "banpush-ca=")
	for _, m := range dropped {
		printNote(env.Stderr, "%s the line of the user CA %s from %s: keys it signed no longer push here", drop, strings.TrimPrefix(m, "banpush-ca="), path)
	}
	for _, m := range others {
		printWarning(env.Stderr, "%s still trusts the user CA %s besides %s: every key it signed can push here", path, strings.TrimPrefix(m, "banpush-ca="), keep)
	}
	if len(others) > 0 && !dryRun {
		printHint(env.Stderr, "once every host has a user certificate from "+keep+", run this again with --drop-other-cas on every host (contrib/fleet/setup-host.sh --drop-other-cas), or delete the lines ending in those banpush-ca= marks between \"# BEGIN banpush\" and \"# END banpush\" in "+path)
	}
	return nil
}
