package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// checkConcurrency bounds how many peers "peers check" contacts at once.
const checkConcurrency = 16

// PeersCheckCmd connects to peers and pings their receivers.
type PeersCheckCmd struct {
	JSON    bool          `name:"json" help:"Print a JSON array instead of a table."`
	Timeout time.Duration `help:"Time limit per peer for connecting, the handshake and the ping (default: ${default})." default:"10s" placeholder:"D"`
	Names   []string      `arg:"" optional:"" name:"NAME" help:"Peers to check (default: all)."`
}

// Help explains the results and what to do about each.
func (c *PeersCheckCmd) Help() string {
	return `For each peer (all of them, or those named), at most 16 at once: connect,
verify the host key against known_hosts, log in with the configured keys, and
send a ping request to the receiver. Nothing is delivered and nothing is
changed. Run it after setting up a peer, and whenever delivery fails.

Results, and what to do:
  ok               the receiver answered; RTT is the ping's round trip
  unreachable      no connection: is sshd running there? a firewall? are
                   HostName and Port right ('banpush peers list')?
  timeout          no answer within --timeout: a firewall dropping packets,
                   or a peer too slow (try a longer --timeout)
  hostkey-unknown  known_hosts has no key for the host: compare its
                   fingerprint, then run 'banpush peers trust NAME'; in a
                   certificate fleet, sign the host's key with the fleet's
                   host CA instead
  hostkey-changed  the host presents a different key than known_hosts: make
                   sure the host was really reinstalled (it may be an attack),
                   remove the stale line named in the report, then trust again
  hostcert-unknown-ca, hostcert-expired, hostcert-wrong-host
                   the host certificate is signed by a CA no @cert-authority
                   line trusts for the host, is outside its validity, or does
                   not name the host (its HostKeyAlias, else HostName):
                   re-sign the host key, or fix known_hosts
  auth             the peer accepted none of the keys: install the key there
                   with 'banpush authorize ... --install'; in a certificate
                   fleet (a KEY-cert.pub beside the key, or CertificateFile),
                   sign the key again with the fleet's user CA
  not-banpush      the key logs in to a plain account: its authorized_keys
                   line lacks the command="banpush receive ..." part
  receiver-cannot-write
                   the receiving account cannot write its log (permissions,
                   a full disk): on the peer, 'banpush doctor' finds it and
                   'banpush setup-account' fixes the log; bans stay queued
  rejected, busy, receiver-error
                   the receiver answered with an error: see its message
  config           the peer's settings cannot be used: fix the inventory

    banpush peers check
    banpush peers check --json web1 db | jq -r '.[] | select(.result != "ok") | .peer'

JSON keys (always present): peer, result, rtt_ms (null unless ok), version,
error, hint. Exit status 0 when every peer is ok, 3 when any is not, 78 if the
inventory is missing or a name is not in it.`
}

// checkReport is one peer's line of "peers check". Its JSON keys are
// stable.
type checkReport struct {
	Peer    string   `json:"peer"`
	Result  string   `json:"result"`
	RTTms   *float64 `json:"rtt_ms"`
	Version string   `json:"version"`
	Error   string   `json:"error"`
	Hint    string   `json:"hint"`

	warnings []string // from the SSH client, printed after the report
}

// Run checks the peers and prints the report.
func (c *PeersCheckCmd) Run(env *Env, g *Globals) error {
	if c.Timeout <= 0 {
		return errorf(exitUsage, "give a positive duration, e.g. --timeout 10s", "--timeout must be positive")
	}
	names := dedupe(c.Names)
	d, err := resolveDelivery(g, env, names)
	if err != nil {
		return err
	}
	for _, w := range d.warnings {
		printWarning(env.Stderr, "%s", w)
	}
	if note := selfNote(g, d.self); note != "" && len(names) == 0 {
		if len(d.self) > 0 {
			note += "; name it to check its own receiver"
		}
		printNote(env.Stderr, "%s", note)
	}
	reports := make([]checkReport, len(d.peers))
	sem := make(chan struct{}, checkConcurrency)
	var wg sync.WaitGroup
	for i, p := range d.peers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			reports[i] = c.check(p, g)
		}()
	}
	wg.Wait()
	for name, err := range d.bad {
		reports = append(reports, checkReport{Peer: name, Result: string(sshpush.ClassConfig), Error: err.Error(),
			Hint: "fix the peer in " + g.Inventory + "; 'banpush peers list' shows the settings banpush uses"})
	}
	slices.SortFunc(reports, func(a, b checkReport) int { return strings.Compare(a.Peer, b.Peer) })

	failed := 0
	for _, r := range reports {
		for _, w := range r.warnings {
			printWarning(env.Stderr, "%s", w)
		}
		if r.Result != string(sshpush.ClassOK) {
			failed++
		}
	}
	if err := printCheckReport(env, reports, c.JSON); err != nil {
		return err
	}
	if failed > 0 {
		return silentExit(exitPeers)
	}
	return nil
}

// check contacts one peer.
func (c *PeersCheckCmd) check(p deliver.Peer, g *Globals) checkReport {
	rep := checkReport{Peer: p.Name}
	var mu sync.Mutex
	opts := sshpush.Options{
		HandshakeTimeout: c.Timeout,
		SessionTimeout:   c.Timeout,
		Warn: func(m string) {
			mu.Lock()
			defer mu.Unlock()
			rep.warnings = append(rep.warnings, m)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	var reply sshpush.PingReply
	cl, err := sshpush.Dial(ctx, p.Target, opts)
	if err == nil {
		reply, err = cl.Ping(ctx)
		cl.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	class := sshpush.ClassOf(err)
	rep.Result = string(class)
	if err == nil {
		ms := math.Round(reply.RTT.Seconds()*1e4) / 10
		rep.RTTms = &ms
		rep.Version = reply.Version
		return rep
	}
	rep.Error = sshpush.Reason(err)
	rep.Hint = checkHint(class, p, err, c.Timeout, g)
	return rep
}

// usesCertificates reports whether the peer is reached the way a
// certificate fleet is: with a CertificateFile, or a KEY-cert.pub beside an
// identity file. Its hints then give the fleet's fix (sign again with the
// fleet's CA, setup-host.sh) instead of the per-key one (authorize,
// peers trust).
func usesCertificates(t sshpush.Target) bool {
	if len(t.CertificateFiles) > 0 {
		return true
	}
	for _, id := range t.IdentityFiles {
		if _, err := os.Stat(id + "-cert.pub"); err == nil {
			return true
		}
	}
	return false
}

// home is the peer's receiving account's home, for a hint: ~USER.
func home(t sshpush.Target) string {
	if t.User == "" {
		return "~USER"
	}
	return "~" + t.User
}

// knownHostsFile is the first known_hosts file the peer's host key is
// looked up in, for a hint.
func knownHostsFile(t sshpush.Target) string {
	if len(t.KnownHostsFiles) > 0 {
		return t.KnownHostsFiles[0]
	}
	return "known_hosts"
}

// certHostName is the principal a peer's host certificate must carry: its
// HostKeyAlias, or else its HostName.
func certHostName(t sshpush.Target) string {
	if t.HostKeyAlias != "" {
		return t.HostKeyAlias
	}
	return t.HostName
}

// checkHint tells what to do about a failed check.
func checkHint(class sshpush.Class, p deliver.Peer, err error, timeout time.Duration, g *Globals) string {
	t := p.Target
	addr := t.Addr()
	switch class {
	case sshpush.ClassUnreachable:
		return fmt.Sprintf("is sshd running on %s and listening on port %d? is a firewall in the way? are HostName and Port right in %s ('banpush peers list')?",
			t.HostName, t.PortOr22(), g.Inventory)
	case sshpush.ClassTimeout:
		return fmt.Sprintf("%s did not answer within %s: a firewall may drop the packets, or the host is down or overloaded; check HostName and Port, or give it longer with --timeout", addr, timeout)
	case sshpush.ClassHostKeyUnknown:
		if usesCertificates(t) {
			return fmt.Sprintf("%s presents a host key without a certificate, and %s trusts no such key: on the CA machine, sign a copy of its /etc/ssh/ssh_host_ed25519_key.pub with the fleet's host CA (ssh-keygen -s host_ca -h -I %s -n %s -V +52w ssh_host_ed25519_key.pub) and install it there with 'setup-host.sh --certs', which reloads sshd (docs/fleet.md); %s must hold the fleet's '@cert-authority * HOST_CA_KEY' line, which contrib/fleet/setup-host.sh installs",
				p.Name, knownHostsFile(t), p.Name, certHostName(t), knownHostsFile(t))
		}
		return fmt.Sprintf("run 'banpush peers trust %s': it shows the key's fingerprint, to compare with the peer's own ('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' there), before adding it", p.Name)
	case sshpush.ClassHostKeyChanged:
		var e *sshpush.Error
		if errors.As(err, &e) && e.Revoked {
			return fmt.Sprintf("a revoked key is never trusted again: find out why it was revoked; if %s was rekeyed, sign its new host key with the host CA (or trust its new key with 'banpush peers trust %s')", p.Name, p.Name)
		}
		where := "the stale line from known_hosts"
		if errors.As(err, &e) && e.HostKey != nil {
			if st, _ := sshpush.LookupHostKey(t, e.HostKey); len(st.Stale) > 0 {
				k := st.Stale[0]
				where = fmt.Sprintf("the stale line %d from %s ('ssh-keygen -R %s -f %s')", k.Line, k.Filename, shellQuote(knownHostsName(t)), shellQuote(k.Filename))
			}
		}
		if usesCertificates(t) {
			return fmt.Sprintf("the host presents a different key: make sure it was really reinstalled or rekeyed (otherwise someone may be in between), then remove %s, and sign its new host key with the fleet's host CA and install it there with 'setup-host.sh --certs' (docs/fleet.md) rather than trusting the key itself", where)
		}
		return fmt.Sprintf("the host presents a different key: make sure it was really reinstalled or rekeyed (otherwise someone may be in between), then remove %s and run 'banpush peers trust %s'", where, p.Name)
	case sshpush.ClassHostCertCA:
		return fmt.Sprintf("trust the CA that signed %s's host key with a line '@cert-authority PATTERN CA_KEY' in known_hosts (PATTERN matching %s), or sign a copy of the peer's /etc/ssh/ssh_host_ed25519_key.pub on the CA machine with the fleet's host CA (ssh-keygen -s host_ca -h -I %s -n %s ssh_host_ed25519_key.pub) and install the certificate there",
			p.Name, knownHostsName(t), p.Name, certHostName(t))
	case sshpush.ClassHostCertTime:
		return fmt.Sprintf("sign a copy of %s's host public key again on the CA machine, valid now (ssh-keygen -s host_ca -h -I %s -n %s -V +52w ssh_host_ed25519_key.pub), install the certificate there and reload sshd; if it is not valid yet, check both clocks", p.Name, p.Name, certHostName(t))
	case sshpush.ClassHostCertHost:
		return fmt.Sprintf("the certificate must name the host as banpush reaches it, %s (its HostKeyAlias, else its HostName): sign a copy of %s's host public key again on the CA machine with that name (ssh-keygen -s host_ca -h -I %s -n %s ssh_host_ed25519_key.pub) and install the certificate there, or set HostKeyAlias for %s in %s to a name the certificate has",
			certHostName(t), p.Name, p.Name, certHostName(t), p.Name, g.Inventory)
	case sshpush.ClassAuth:
		pub := "KEY.pub"
		if len(t.IdentityFiles) > 0 {
			pub = t.IdentityFiles[0] + ".pub"
		}
		if usesCertificates(t) {
			cert := strings.TrimSuffix(pub, ".pub") + "-cert.pub"
			if len(t.CertificateFiles) > 0 {
				cert = t.CertificateFiles[0]
			}
			return fmt.Sprintf("%s accepted neither this host's key nor its certificate: 'ssh-keygen -Lf %s' shows whether the certificate is valid now and names the principal banpush; if not, sign %s again on the CA machine with the fleet's user CA (ssh-keygen -s user_ca -I %s -n banpush -V +52w %s) and install the certificate here with 'setup-host.sh --certs' (docs/fleet.md). If it is, %s's authorized_keys lacks the fleet's cert-authority line, or its KRL revokes this key: run contrib/fleet/setup-host.sh there again",
				p.Name, cert, filepath.Base(pub), thisHostName(), filepath.Base(pub), home(t)+" on "+p.Name)
		}
		return fmt.Sprintf("install this host's key for %s on the peer: there, run 'banpush authorize --peer %s --log /var/log/banpush/received.log --from ADDRESS_OF_THIS_HOST --install %s/.ssh/authorized_keys %s' (with a copy of %s); in a certificate fleet, install this host's certificate as %s-cert.pub instead ('setup-host.sh --certs', docs/fleet.md)",
			t.User, thisHostName(), home(t), filepath.Base(pub), pub, strings.TrimSuffix(pub, ".pub"))
	case sshpush.ClassNotBanpush:
		return fmt.Sprintf("the key logs in to a plain account on %s: its authorized_keys line lacks the forced command; replace it with the line 'banpush authorize' prints there", t.HostName)
	case sshpush.ClassRejected:
		return "the receiver refused the request: see its message; is banpush on the peer as recent as here, and are the arguments in its authorized_keys line right?"
	case sshpush.ClassBusy:
		return "the receiver is busy: try again in a moment"
	case sshpush.ClassCannotWrite:
		return fmt.Sprintf("the receiving account on %s cannot write its log (the message says which file and why): there, as root, 'banpush doctor' finds it and 'banpush setup-account' gives the account its log; the bans stay queued here until it can", p.Name)
	case sshpush.ClassTooOld:
		return fmt.Sprintf("upgrade banpush on %s: its receiver predates unbans; they stay queued here, and its later bans with them, until it is upgraded", p.Name)
	case sshpush.ClassReceiverError:
		return "the receiver failed: see its message; on the peer, check that the --log file of its authorized_keys line is writable by that account"
	case sshpush.ClassConfig:
		return "fix the peer in " + g.Inventory + " or its known_hosts files; 'banpush peers list' shows the settings banpush uses"
	}
	return ""
}

func printCheckReport(env *Env, reports []checkReport, asJSON bool) error {
	if asJSON {
		if reports == nil {
			reports = []checkReport{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	if len(reports) == 0 {
		printNote(env.Stderr, "no peers to check")
		return nil
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tRESULT\tRTT\tVERSION\tDETAIL")
	for _, r := range reports {
		rtt, version := "-", "-"
		if r.RTTms != nil {
			rtt = strconv.FormatFloat(*r.RTTms, 'f', 1, 64) + "ms"
		}
		if r.Version != "" {
			version = r.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Peer, r.Result, rtt, version, oneLine(r.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Padding before an empty DETAIL would leave trailing blanks.
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			if _, err := io.WriteString(env.Stdout, strings.TrimRight(line, " \n")+"\n"); err != nil {
				return err
			}
		}
	}
	for _, r := range reports {
		if r.Hint != "" {
			printHint(env.Stderr, r.Peer+": "+r.Hint)
		}
	}
	return nil
}

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
	inv, err := loadInventory(g)
	if err != nil {
		return nil, err
	}
	for _, n := range c.Names {
		if _, ok := inv.Peer(n); !ok {
			return nil, errorf(exitConfig, "'banpush peers list' shows the peers", "no peer named %q in %s", n, g.Inventory)
		}
	}
	if !c.All {
		return dedupe(c.Names), nil
	}
	d, err := resolveDelivery(g, env, nil)
	if err != nil {
		return nil, err
	}
	if note := selfNote(g, d.self); note != "" {
		printNote(env.Stderr, "%s", note)
	}
	return d.live, nil
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
	_, r, err := loadResolver(g, env)
	if err != nil {
		return sshpush.Target{}, "", err
	}
	s, err := r.settings(name)
	if err != nil {
		return sshpush.Target{}, "", withHint(err, exitConfig, "fix the peers file; 'ssh -G -F "+g.Inventory+" "+name+"' shows how ssh reads it")
	}
	t := r.target(s)
	for _, w := range r.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	file := filepath.Join(r.local.Home, ".ssh", "known_hosts")
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
		return nil, withHint(err, code, checkHint(class, deliver.Peer{Name: name, Target: t}, err, c.Timeout, g))
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

// knownHostsName is the host as known_hosts writes it: [host]:port for a
// port other than 22.
func knownHostsName(t sshpush.Target) string {
	return knownhosts.Normalize(t.KnownHostsAddr())
}

// thisHostName is this host's name for the hint of an auth failure.
func thisHostName() string {
	if h := shortHostname(); record.ValidName(h) {
		return h
	}
	return "NAME"
}

// shellQuote quotes s for a POSIX shell, for a command shown in a hint.
func shellQuote(s string) string {
	if q, err := authkeys.ShellQuote(s); err == nil {
		return q
	}
	return s
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
