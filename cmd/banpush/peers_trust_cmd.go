package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/roster"
	"golang.org/x/crypto/ssh"
)

// PeersTrustCmd adds a peer's host key to known_hosts, after a person has
// seen its fingerprint.
type PeersTrustCmd struct {
	Names   []string      `arg:"" optional:"" name:"NAME" help:"Peers whose host keys to trust, one after the other."`
	All     bool          `help:"Every peer of the inventory but this host (see --self)."`
	Yes     bool          `help:"Add the keys without asking (check the fingerprints first)."`
	Timeout time.Duration `help:"Time limit for fetching the key (default: ${default})." default:"10s" placeholder:"D"`
}

// Help explains what trusting means.
func (c *PeersTrustCmd) Help() string {
	return `banpush never accepts a host key on its own: an unknown key makes delivery
fail with hostkey-unknown. This command is how a key gets into known_hosts.

It connects to the peer, takes the host key the server presents (without
logging in and without trusting it), and shows its type and SHA256
fingerprint. Compare the fingerprint with the one the peer shows itself:

    ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub      (run on the peer)

Then answer "y", and banpush appends the key to the first UserKnownHostsFile
of the peer's settings ('banpush peers list' shows it), or to ~/.ssh/known_hosts
of the account it runs as when there is none. The file is created with mode
0600 if missing.

    banpush peers trust web1
    banpush peers trust web1 --yes      (in scripts, once the fingerprint is known)
    banpush peers trust web1 web2 db    (asks for each in turn)
    banpush peers trust --all

A fleet whose hosts have certificates from one host CA needs none of this:
one line '@cert-authority * CA_KEY' in known_hosts trusts every host key the
CA signed (docs/fleet.md).

If known_hosts already holds a different key for the host, nothing is written:
the key has changed, which needs a person to find out why. Remove the stale
line it names, then run this again. Without --yes an answer is read from
stdin, one line per peer; no answer refuses. Exit status 0 when every key is
added or already there, 1 when one is refused, 3 when a peer cannot be
reached, 78 for an unknown peer or a missing inventory; with several peers,
each is tried and the status is that of the first that failed.`
}

// Run trusts each peer in turn.
func (c *PeersTrustCmd) Run(env *Env, g *Globals) error {
	if c.Timeout <= 0 {
		return errorf(exitUsage, "give a positive duration, e.g. --timeout 10s", "--timeout must be positive")
	}
	names, err := c.names(env, g)
	if err != nil {
		return err
	}
	var first error
	for _, name := range names {
		err := c.trust(env, g, name)
		if err == nil {
			continue
		}
		if len(names) == 1 {
			return err
		}
		if code := report(env.Stderr, err); first == nil {
			first = silentExit(code)
		}
	}
	return first
}

// names are the peers to trust: those named, or with --all every peer but
// this host. Every name must be in the inventory.
func (c *PeersTrustCmd) names(env *Env, g *Globals) ([]string, error) {
	switch {
	case c.All && len(c.Names) > 0:
		return nil, errorf(exitUsage, "give peer names, or --all for every peer", "--all and peer names do not go together")
	case !c.All && len(c.Names) == 0:
		return nil, errorf(exitUsage, "give the peers to trust, e.g. 'banpush peers trust web1 web2', or --all", "no peers given")
	}
	if !c.All {
		if _, err := loadRoster(env, g, c.Names...); err != nil {
			return nil, err
		}
		return dedupe(c.Names), nil
	}
	d, err := loadRoster(env, g)
	if err != nil {
		return nil, err
	}
	if note := roster.SelfNote(d.Self, g.Self, g.Inventory); note != "" {
		printNote(env.Stderr, "%s", note)
	}
	return d.Live, nil
}

// trust fetches the peer's host key, shows it, asks and appends it.
func (c *PeersTrustCmd) trust(env *Env, g *Globals, name string) error {
	t, file, err := trustTarget(env, g, name)
	if err != nil {
		return err
	}
	key, err := c.fetch(env, g, name, t)
	if err != nil {
		return err
	}
	if known, err := checkKnown(env, name, t, key); known || err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "peer:        %s\nhost:        %s\nkey type:    %s\nfingerprint: %s\nfile:        %s\n",
		name, knownHostsName(t), key.Type(), ssh.FingerprintSHA256(key), file)
	if err := c.confirm(env, name, file); err != nil {
		return err
	}
	if err := sshpush.AppendKnownHost(file, sshpush.KnownHostsLine(t, key)); err != nil {
		return withHint(err, exitFailure, "check that "+filepath.Dir(file)+" is writable, or set UserKnownHostsFile in "+g.Inventory)
	}
	printNote(env.Stderr, "added the %s key of peer %s to %s", key.Type(), name, file)
	if !slices.Contains(t.KnownHostsFiles, file) {
		printWarning(env.Stderr, "peer %s does not read %s (UserKnownHostsFile none?): set UserKnownHostsFile in %s", name, file, g.Inventory)
	}
	return nil
}

// trustTarget resolves the peer, and the known_hosts file a trusted key
// goes to: the first UserKnownHostsFile of its settings, or
// ~/.ssh/known_hosts.
func trustTarget(env *Env, g *Globals, name string) (sshpush.Target, string, error) {
	r, err := loadResolver(env, g)
	if err != nil {
		return sshpush.Target{}, "", err
	}
	s, err := r.Settings(name)
	if err != nil {
		return sshpush.Target{}, "", withHint(err, exitConfig, peerHint(g.Inventory, name))
	}
	t := r.Target(s)
	for _, w := range r.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	file := filepath.Join(r.Home(), ".ssh", "known_hosts")
	if len(s.UserKnownHostsFiles) > 0 {
		file = s.UserKnownHostsFiles[0]
	}
	return t, file, nil
}

// fetch gets the host key the peer presents.
func (c *PeersTrustCmd) fetch(env *Env, g *Globals, name string, t sshpush.Target) (ssh.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	key, err := sshpush.FetchHostKey(ctx, t, sshpush.Options{
		HandshakeTimeout: c.Timeout,
		Warn:             func(m string) { printWarning(env.Stderr, "%s", m) },
	})
	if err != nil {
		class := sshpush.ClassOf(err)
		code := exitPeers
		if class == sshpush.ClassConfig {
			code = exitConfig
		}
		return nil, withHint(err, code, checkHint(class, roster.Peer{Name: name, Target: t}, err, c.Timeout, g))
	}
	return key, nil
}

// checkKnown compares the key with known_hosts: already there (nothing to
// do), revoked or changed (an error, nothing written), or new.
func checkKnown(env *Env, name string, t sshpush.Target, key ssh.PublicKey) (known bool, err error) {
	host := knownHostsName(t)
	st, err := sshpush.LookupHostKey(t, key)
	if err != nil {
		return false, withHint(err, exitConfig, "fix or remove the known_hosts file named above")
	}
	switch {
	case st.Revoked != nil:
		return false, errorf(exitFailure, "a revoked key is never trusted again; find out why it was revoked",
			"the host key of peer %s (%s %s) is marked @revoked at %s:%d", name, key.Type(), ssh.FingerprintSHA256(key), st.Revoked.Filename, st.Revoked.Line)
	case st.Known:
		printNote(env.Stderr, "the %s key of peer %s at %s (%s) is already in known_hosts: nothing to do", key.Type(), name, host, ssh.FingerprintSHA256(key))
		return true, nil
	case len(st.Stale) > 0:
		k := st.Stale[0]
		return false, errorf(exitFailure,
			fmt.Sprintf("make sure the host was really reinstalled or rekeyed (otherwise someone may be in between), then remove line %d of %s ('ssh-keygen -R %s -f %s') and run 'banpush peers trust %s' again",
				k.Line, k.Filename, shellQuote(host), shellQuote(k.Filename), name),
			"the host key of peer %s at %s has changed: the server offers %s %s, but %s:%d holds a different %s key; not adding it",
			name, host, key.Type(), ssh.FingerprintSHA256(key), k.Filename, k.Line, k.Key.Type())
	}
	return false, nil
}

// confirm asks on stdin unless --yes.
func (c *PeersTrustCmd) confirm(env *Env, name, file string) error {
	if c.Yes {
		return nil
	}
	fmt.Fprintf(env.Stderr, "Add this key to %s? [y/N] ", file)
	answer, err := readAnswer(env.Stdin)
	if err != nil {
		fmt.Fprintln(env.Stderr)
		return errorf(exitFailure, "run it in a terminal to answer, or pass --yes once you have compared the fingerprint",
			"no answer on stdin: the key of peer %s was not added", name)
	}
	if a := strings.ToLower(answer); a != "y" && a != "yes" {
		return errorf(exitFailure, "", "refused: the key of peer %s was not added", name)
	}
	return nil
}

// readAnswer reads one line of at most 64 bytes, a byte at a time so that
// the next line is left for the next question. It fails when the input
// ends before anything was typed.
func readAnswer(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 64 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if len(line) == 0 {
				return "", err
			}
			break
		}
	}
	return strings.TrimSpace(string(line)), nil
}
