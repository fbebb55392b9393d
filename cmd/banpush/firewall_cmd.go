package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/roster"
)

// defaultFirewallState is banpush firewall's cursor (STATE.bans beside it),
// in the StateDirectory of contrib/systemd/banpush-firewall.service.
const defaultFirewallState = "/var/lib/banpush-firewall/cursor"

// FirewallCmd is the fast path: the received bans into a kernel set.
type FirewallCmd struct {
	Log            string        `help:"The received log that 'banpush receive' writes; LOG.1, its last rotation, is read too." default:"/var/log/banpush/received.log" type:"path" placeholder:"PATH"`
	Jail           []string      `help:"Ban on the lines of this receiving jail only (banpush, banpush-quorum or banpush-fleet); repeat for more (default: every receiving jail fail2ban's configuration enables)." placeholder:"NAME"`
	State          string        `help:"The cursor; the bans in force are kept beside it (STATE.bans). Its directory must be root's alone (made 0700 if missing)." default:"${firewall_state}" type:"path" placeholder:"PATH"`
	Fail2banConfig string        `name:"fail2ban-config" help:"fail2ban's configuration directory, where the receiving jails' filters, bantime and ignoreip are read (fail2ban-client -c DIR -d)." default:"${fail2ban_config}" type:"path" placeholder:"DIR"`
	AllowPrivate   bool          `help:"Ban private (RFC 1918, RFC 4193) and CGNAT addresses from any peer. Without it, a peer's are banned where its receiver line in the account's authorized_keys has --allow-private, as the receiver took them."`
	Account        string        `help:"The receiving account, whose authorized_keys lines say which peers' private addresses to ban." default:"banpush" placeholder:"NAME"`
	AuthorizedKeys string        `name:"authorized-keys" help:"The receiving account's authorized_keys (default: ~ACCOUNT/.ssh/authorized_keys)." type:"path" placeholder:"FILE"`
	Interval       time.Duration `help:"How often to read the log for new lines." default:"200ms" placeholder:"DURATION"`
	Once           bool          `help:"Restore the kernel set, apply what the log holds since the cursor, and exit (hosts without systemd: run it at boot and often)."`
	Remove         bool          `help:"Remove the kernel set (table inet banpush) and exit; the state file stays, and the next start restores from it."`
	JSON           bool          `name:"json" help:"Print what each run did as JSON, one object a line."`
}

// Help explains the fast path and how it shares the work with fail2ban.
func (c *FirewallCmd) Help() string {
	return `firewall is the fast path of a receiving host: instead of fail2ban running
one firewall command per received address, it puts the addresses the
receiving jails would ban straight into a kernel set, thousands at a time:
an nftables table of its own (inet banpush) with a set of IPv4 and one of
IPv6 addresses, each with a timeout equal to what is left of its ban, and
chains on input and forward that drop their packets. The kernel lets each
ban run out, whether this service runs or not.

It follows the received log (rotation-safe, from a cursor in --state's
directory) and decides each line as fail2ban's receiving jails would,
reading their settings where the admin set them (fail2ban-client -c
--fail2ban-config -d, which needs no running server): a line counts only
for a jail the configuration enables (ban lines for banpush, quorum lines
for banpush-quorum, fleet lines for banpush-fleet; report lines never),
only if the jail's own failregex matches it, never for an address in the
jail's ignoreip or one the receiver's policy refuses (this host's own
among them), and for the jail's bantime from the line's time stamp. Unban
lines lift their address.

Each batch of lines is one netlink transaction; the bans in force are
kept in STATE.bans, from which a restart, or a boot that emptied the
kernel, restores them in one batch. A service killed at any point loses
nothing: it reads on from its cursor.

Set the receiving jails' action to none (contrib/fail2ban/jail.d/
banpush-firewall.local), so that fail2ban keeps their settings and
counts, and does not ban the same addresses a second time, slowly:
'banpush doctor' warns when both paths, or neither, ban.

Run it as root, as a service (contrib/systemd/banpush-firewall.service).
Exit status 0 on SIGTERM or SIGINT (or after --once or --remove), 69 when
fail2ban-client is missing, 75 when another one follows the same cursor,
78 when no receiving jail is enabled, for a --jail that is not one, a
jail that watches another log, or a --state in a directory others may
change.`
}

// Run follows the log until a signal, or once.
func (c *FirewallCmd) Run(env *Env) error {
	for _, j := range c.Jail {
		if !firewall.IsReceiving(j) {
			return errorf(exitUsage, "the receiving jails are banpush, banpush-quorum and banpush-fleet", "--jail %q is not a receiving jail", record.Printable(j))
		}
	}
	if c.Interval <= 0 {
		return errorf(exitUsage, "", "--interval must be positive")
	}
	set, err := nftset.Open(0)
	if err != nil {
		return withHint(err, exitFailure, "run it as root")
	}
	defer set.Close()
	if c.Remove {
		if err := set.Remove(); err != nil {
			return c.error(err)
		}
		return nil
	}
	log, err := filepath.Abs(c.Log)
	if err != nil {
		return err
	}
	state, err := filepath.Abs(c.State)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return withHint(err, exitFailure, "check --state")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg := firewall.Config{Log: log, State: state, Now: env.Now,
		Policy:     record.Policy{AllowPrivate: c.AllowPrivate, Local: roster.LocalAddrs()},
		PeerAllows: c.peerAllows(env, log)}
	e, rep, err := firewall.Start(ctx, cfg, set)
	if err != nil {
		return c.error(err)
	}
	defer e.Close()
	if err := c.print(env, rep, true); err != nil {
		return err
	}
	// The bans in force are back in the kernel: now what decides the
	// new ones.
	jails, err := c.jails(ctx, log)
	if err != nil {
		return c.error(err)
	}
	e.SetJails(jails)
	once := func(ctx context.Context) error {
		rep, err := e.Run(ctx)
		if perr := c.print(env, rep, false); perr != nil && err == nil {
			err = perr
		}
		if errors.Is(err, logtail.ErrNoLog) && !c.Once {
			return nil // not yet: setup-account makes it
		}
		return c.error(err)
	}
	if c.Once {
		return once(ctx)
	}
	return logtail.Follow(ctx, c.Interval, once)
}

// jails reads the receiving jails from fail2ban's configuration, keeping
// those of --jail; each must watch log.
func (c *FirewallCmd) jails(ctx context.Context, log string) ([]firewall.Jail, error) {
	client := &f2b.Client{}
	ss, err := client.Settings(ctx, c.Fail2banConfig)
	if err != nil {
		return nil, err
	}
	js, err := firewall.FromDump(ss, resolveHost)
	if err != nil {
		return nil, withHint(err, exitConfig, "fix the jail in "+c.Fail2banConfig+"/jail.d (docs/firewall.md#what-it-reads-from-fail2ban)")
	}
	if len(c.Jail) > 0 {
		js = slices.DeleteFunc(js, func(j firewall.Jail) bool { return !slices.Contains(c.Jail, j.Name) })
		for _, want := range c.Jail {
			if !slices.ContainsFunc(js, func(j firewall.Jail) bool { return j.Name == want }) {
				return nil, errorf(exitConfig, "enable it in "+c.Fail2banConfig+"/jail.d (with action = none: docs/firewall.md#setting-it-up)", "fail2ban's configuration does not enable the jail %s", want)
			}
		}
	}
	for _, j := range js {
		if !slices.ContainsFunc(j.LogPaths, func(p string) bool { return filepath.Clean(p) == filepath.Clean(log) }) {
			return nil, errorf(exitConfig, "give --log the jail's logpath, or the jail this log (fail2ban-client -c "+c.Fail2banConfig+" -d shows it)",
				"the jail %s watches %s, not %s: its settings are not meant for this log", j.Name, strings.Join(j.LogPaths, ", "), log)
		}
	}
	if len(js) == 0 {
		return nil, errorf(exitConfig, "enable the banpush jail (contrib/fail2ban/jail.d/banpush.conf) with contrib/fail2ban/jail.d/banpush-firewall.local (docs/firewall.md#setting-it-up)", "fail2ban's configuration in %s enables no receiving jail (banpush, banpush-quorum, banpush-fleet)", c.Fail2banConfig)
	}
	return js, nil
}

// resolveHost resolves a host name of an ignoreip, within a few seconds.
func resolveHost(name string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	return ips, err
}

// peerAllows says whether the receiver line of a peer in the account's
// authorized_keys, writing log, takes an address (a private one, with
// --allow-private there), as the receiver did. The file is read at the
// first private address of a run, and again when it changes.
func (c *FirewallCmd) peerAllows(env *Env, log string) func(string, netip.Addr) bool {
	type line struct {
		peer    string
		anyPeer bool
		policy  record.Policy
	}
	var (
		lines   []line
		read    time.Time
		lastErr string
	)
	return func(peer string, a netip.Addr) bool {
		if read.IsZero() || env.Now().Sub(read) > time.Minute {
			read = env.Now()
			keys, err := accountKeys(c.Account, c.AuthorizedKeys)
			if err != nil {
				if err.Error() != lastErr {
					printWarning(env.Stderr, "%v: private addresses are banned only with --allow-private", err)
				}
				lastErr = err.Error()
			} else {
				lastErr = ""
			}
			lines = lines[:0]
			args, _ := receive.ArgsFromKeys(keys)
			for _, r := range args {
				if filepath.Clean(r.Log) != filepath.Clean(log) {
					continue
				}
				if _, cfg, err := r.Check(time.Now); err == nil {
					lines = append(lines, line{peer: record.PeerID(r.Peer), anyPeer: r.PeerFromCert, policy: cfg.Policy})
				}
			}
		}
		id := record.PeerID(peer)
		for _, l := range lines {
			if (l.anyPeer || l.peer == id) && l.policy.Check(a) == nil {
				return true
			}
		}
		return false
	}
}

// error gives the fast path's errors their exit code and hint.
func (c *FirewallCmd) error(err error) error {
	var u *userError
	switch {
	case err == nil, errors.As(err, &u):
		return err
	case errors.Is(err, exec.ErrNotFound):
		return withHint(errors.New("fail2ban-client is not installed: the receiving jails' settings cannot be read"), exitUnavailable, "apt-get install fail2ban (or put fail2ban-client on PATH)")
	case errors.Is(err, logtail.ErrBusy):
		return withHint(err, exitTemp, "another 'banpush firewall' runs: systemctl status banpush-firewall")
	case errors.Is(err, logtail.ErrUnsafeState):
		return withHint(err, exitConfig, "give --state a file in a directory of root's that nobody else can write, such as the default's")
	case errors.Is(err, firewall.ErrDamagedState):
		return withHint(err, exitFailure, "the bans in force are read again from the log once it is gone")
	case errors.Is(err, logtail.ErrNoLog):
		return withHint(fmt.Errorf("no received log: %w", err), exitFailure, "check --log: the receiving account's log (docs/setup.md#step-1)")
	case errors.Is(err, syscall.EPERM), errors.Is(err, os.ErrPermission):
		return withHint(err, exitFailure, "run it as root: the kernel set needs CAP_NET_ADMIN")
	}
	var fe *f2b.Error
	if errors.As(err, &fe) {
		return withHint(err, exitUnavailable, "check fail2ban's configuration: fail2ban-client -c "+c.Fail2banConfig+" -d")
	}
	return err
}

// print writes what a start or a run did: JSON, or one line. With always
// unset, a run that read nothing prints nothing.
func (c *FirewallCmd) print(env *Env, rep firewall.Report, always bool) error {
	if !always && rep.Lines == 0 && rep.Added == 0 && rep.Lifted == 0 {
		return nil
	}
	if c.JSON {
		return json.NewEncoder(env.Stdout).Encode(rep)
	}
	if always && rep.Lines == 0 {
		_, err := fmt.Fprintf(env.Stdout, "kernel set ready: %s in force, %d restored\n", plural(rep.Bans, "ban"), rep.Restored)
		return err
	}
	sk := rep.Skipped
	var skipped []string
	for _, s := range []struct {
		n    int
		what string
	}{{sk.Bad, "malformed"}, {sk.NoJail, "of no enabled jail"}, {sk.Filter, "not matched by the jail's filter"}, {sk.Ignored, "in ignoreip"}, {sk.Refused, "refused by the policy"}, {sk.Expired, "expired"}, {sk.Known, "banned already"}, {sk.NotIn, "unbans of addresses not banned"}} {
		if s.n > 0 {
			skipped = append(skipped, fmt.Sprintf("%d %s", s.n, s.what))
		}
	}
	line := fmt.Sprintf("%s read: %d added, %d lifted, %s in force", plural(rep.Lines, "line"), rep.Added, rep.Lifted, plural(rep.Bans, "ban"))
	if len(skipped) > 0 {
		line += "; passed over: " + strings.Join(skipped, ", ")
	}
	_, err := fmt.Fprintln(env.Stdout, line)
	return err
}
