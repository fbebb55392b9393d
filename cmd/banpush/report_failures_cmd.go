package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/f2blog"
	"github.com/banpush/banpush/sshpush/failreport"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// ReportFailuresCmd follows fail2ban's log and reports every failure of the
// chosen jails to the fleet and to this host's own receiver.
type ReportFailuresCmd struct {
	DeliveryFlags
	Jail          []string      `help:"Report the failures of this jail; repeat for more." default:"sshd" placeholder:"NAME"`
	Fail2banLog   string        `name:"fail2ban-log" help:"fail2ban's own log, where it writes each failure as 'Found' (default: the running fail2ban's logtarget)." type:"path" placeholder:"PATH"`
	State         string        `help:"The cursor in fail2ban's log. Its directory must be root's alone (made 0700 if missing)." default:"/var/lib/banpush-report-failures/cursor" type:"path" placeholder:"PATH"`
	Account       string        `help:"The receiving account: this host's own failures are given to its receiver, run as this account." default:"banpush" placeholder:"NAME"`
	Log           string        `help:"The received log this host's receiver writes (its fleet lines go there)." default:"/var/log/banpush/received.log" placeholder:"PATH"`
	Name          string        `help:"This host's name in the count, as its peers name it (default: --self, or the short host name)." placeholder:"NAME"`
	NoLocal       bool          `help:"Do not count this host's own failures here; only send them to the peers."`
	AllowPrivate  bool          `help:"Report private (RFC 1918, RFC 4193) and CGNAT addresses too; peers refuse them unless they allow them."`
	FleetFailures int           `help:"This host's own fleet policy, as its authorized_keys lines give it to the peers' reports: failures over all hosts that make a fleet ban (default ${fleet_failures})." placeholder:"N"`
	FleetHosts    int           `help:"Distinct hosts that must have seen failures (default ${fleet_hosts})." placeholder:"K"`
	FleetWindow   time.Duration `help:"How long a failure counts (default ${fleet_window})." placeholder:"DURATION"`
	Interval      time.Duration `help:"How often failures are read and sent: at most one report session per peer per interval." default:"1s" placeholder:"DURATION"`
	Once          bool          `help:"Read and report what fail2ban logged since the last run, then exit."`
}

// Help explains what report-failures reports, and how it fits with the
// rest of the fleet.
func (c *ReportFailuresCmd) Help() string {
	return `report-failures turns the fleet into one detector: it follows fail2ban's own
log, where fail2ban writes every failure its filters find ("[sshd] Found
203.0.113.7 - ...", after ignoreip, before maxretry), and every second at
most it queues the failures of the chosen jails as failure reports, one per
address with its count, for every peer of the inventory (delivered by the
same detached sender as bans), and gives them to this host's own receiver.

Each receiver whose line for the reporting host has --fleet ('banpush
authorize --fleet') counts the failures of every host, its own included:
when an address reaches --fleet-failures from at least --fleet-hosts
distinct hosts within --fleet-window, it writes a fleet line, which the
banpush-fleet jail (contrib/fail2ban/jail.d/banpush-fleet.conf) bans on.
So a brute force spread thin over the hosts, under every host's maxretry,
is banned on every host at once.

It reads fail2ban's log, not a jail's action: a burst of failures never
holds fail2ban's action lock, and the failures of an address a jail has
already banned are still seen. The cursor (--state) moves only once a
batch is queued: a crash reads it again. The first run starts at the end
of the log: what fail2ban logged before is not reported.

Run it as root, as a service (contrib/systemd/banpush-report-failures.service):
  banpush report-failures --jail sshd
Exit status 0 on SIGTERM or SIGINT (or after --once), 69 when fail2ban's
log target cannot be learned, 78 for a --state in a directory others may
change.`
}

// Run follows fail2ban's log until a signal, or once.
func (c *ReportFailuresCmd) Run(env *Env, g *Globals) error {
	if err := checkJailFlags(c.Jail); err != nil {
		return err
	}
	if c.Interval <= 0 {
		return errorf(exitUsage, "", "--interval must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logPath, err := c.fail2banLog(ctx, g)
	if err != nil {
		return err
	}
	state, err := stateFile(c.State)
	if err != nil {
		return err
	}
	follow, err := f2blog.Open(ctx, f2blog.Config{Log: logPath, Cursor: state, Jails: c.Jail, MaxAge: receive.MaxFleetWindow, Now: env.Now})
	if err != nil {
		return followError(err)
	}
	defer follow.Close()
	if follow.FirstStart() {
		printWarning(env.Stderr, "no cursor in %s: starting at the end of %s, what fail2ban logged before is not reported", state, logPath)
	}
	var last f2blog.Batch
	read := func(context.Context) ([]f2blog.Failure, bool, error) {
		b, err := follow.Read()
		last = b
		return b.Failures, b.More, err
	}
	cfg := failreport.Config{
		Read:     read,
		Commit:   func() error { return follow.Commit(last) },
		Queue:    c.queue(env, g),
		Policy:   record.Policy{AllowPrivate: c.AllowPrivate},
		Interval: c.Interval,
		Logf:     func(format string, args ...any) { printWarning(env.Stderr, format, args...) },
	}
	if !c.NoLocal {
		local, err := c.local(g)
		if err != nil {
			return err
		}
		cfg.Local = local.Send
	}
	r := failreport.New(cfg)
	if c.Once {
		rep, err := r.Round(ctx)
		if err != nil {
			return withHint(err, exitTemp, "the next run reads the same failures again")
		}
		fmt.Fprintf(env.Stdout, "failures of %s: %d; reports queued for the peers: %d; refused by the address policy: %d; counted here: %d\n",
			strings.Join(c.Jail, ", "), rep.Failures, rep.Reports, rep.Refused, rep.Local)
		return nil
	}
	return r.Run(ctx)
}

// fail2banLog is --fail2ban-log, or the file the running fail2ban logs to.
func (c *ReportFailuresCmd) fail2banLog(ctx context.Context, g *Globals) (string, error) {
	if c.Fail2banLog != "" {
		return filepath.Abs(c.Fail2banLog)
	}
	target, err := (&f2b.Client{Socket: g.Fail2banSocket}).LogTarget(ctx)
	if err != nil {
		hint := "start fail2ban, or give its log with --fail2ban-log"
		if errors.Is(err, f2b.ErrLogNotFile) {
			hint = "set logtarget to a file in /etc/fail2ban/fail2ban.local ([Definition] logtarget = /var/log/fail2ban.log) and restart fail2ban"
		}
		return "", withHint(err, exitUnavailable, hint)
	}
	return target, nil
}

// queue queues the reports for every peer and has the sender deliver
// them. The spool is opened at the first report: a host with no failure
// gets none made.
func (c *ReportFailuresCmd) queue(env *Env, g *Globals) func(context.Context, []record.Record) error {
	kick := senderCommand(g, c.DeliveryFlags)
	var s *spool.Spool
	return func(ctx context.Context, recs []record.Record) error {
		if s == nil {
			var err error
			if s, err = spool.Open(g.Spool, spool.Options{}); err != nil {
				return fmt.Errorf("%w (banpush needs a writable spool directory: --spool, BANPUSH_SPOOL)", err)
			}
		}
		items := make([]spool.Item, len(recs))
		for i, r := range recs {
			items[i] = spool.Item{Kind: spool.Failure, Record: r}
		}
		ctx, cancel := context.WithTimeout(ctx, appendTimeout)
		defer cancel()
		if err := s.AppendItems(ctx, env.Now(), items...); err != nil {
			return err
		}
		if err := sender.Kick(s, kick); err != nil {
			printWarning(env.Stderr, "queued, but could not start a sender: %v", err)
		}
		return nil
	}
}

// local is this host's own receiver, with the fleet policy of the flags.
func (c *ReportFailuresCmd) local(g *Globals) (failreport.LocalReceiver, error) {
	name := c.Name
	if name == "" {
		name = g.Self
	}
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return failreport.LocalReceiver{}, withHint(err, exitFailure, "give this host's name with --name")
		}
		name = record.PeerID(host)
	}
	a := receive.DefaultArgs()
	a.Peer, a.Log, a.AllowPrivate = name, c.Log, c.AllowPrivate
	// This host's own failures come from its own fail2ban: no bucket
	// holds them back.
	a.MaxBurst, a.MaxPerMinute = receive.MaxMaxBurst, receive.MaxMaxPerMinute
	a.Fleet = true
	a.FleetFailures = orDefault(c.FleetFailures, receive.DefaultFleetPolicy.Failures)
	a.FleetHosts = orDefault(c.FleetHosts, receive.DefaultFleetPolicy.Hosts)
	a.FleetWindow = orDefault(c.FleetWindow, receive.DefaultFleetPolicy.Window)
	canon, _, err := a.Check(time.Now)
	if err != nil {
		return failreport.LocalReceiver{}, withHint(err, exitUsage, "see 'banpush report-failures --help'")
	}
	self, err := os.Executable()
	if err != nil {
		return failreport.LocalReceiver{}, err
	}
	return failreport.LocalReceiver{Binary: self, Argv: canon.Argv(), User: c.Account}, nil
}

// followError gives a failure to follow fail2ban's log its exit status.
func followError(err error) error {
	switch {
	case errors.Is(err, logtail.ErrUnsafeState):
		return withHint(err, exitConfig, "give --state a directory only root may write (0700, owned by root)")
	case errors.Is(err, logtail.ErrBusy):
		return withHint(err, exitTemp, "another report-failures runs with the same --state")
	}
	return withHint(err, exitFailure, "check --fail2ban-log and --state")
}
