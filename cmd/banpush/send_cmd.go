package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// SendCmd is the background sender that push starts.
type SendCmd struct {
	DeliveryFlags
	Linger      time.Duration `help:"Keep connections open this long after the queue empties." default:"10s"`
	MaxRun      time.Duration `help:"Stop retrying unreachable peers after this long; the next push or flush goes on." default:"5m"`
	Concurrency int           `help:"Peers delivered to at once." default:"32"`
	BatchGap    time.Duration `help:"While lingering, wait at least this long after a batch before sending the next, so that a burst goes out in fewer, larger batches (a ban after a quiet spell goes at once; 0s: never wait)." default:"10ms"`
}

// Help explains the sender.
func (c *SendCmd) Help() string {
	return `send is the background sender: 'banpush push' starts it when none is running,
detached from fail2ban. It takes the spool's sender lock (at most one runs per
spool), delivers every peer's queue over one SSH connection per peer, lingers
for more bans, and exits. Unreachable peers are retried with backoff until
--max-run; authentication and host key failures are recorded (see 'banpush
status') and not retried until the next run. A foreground 'banpush flush' or
'push --wait' makes a lingering sender finish its batch and exit. Its
diagnostics go to syslog and to sender.log in the spool directory.`
}

// Run delivers until every queue is empty, then exits.
func (c *SendCmd) Run(env *Env, g *Globals) error {
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return err
	}
	log := sender.OpenLog(s.Dir(), env.Now)
	defer log.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.MaxRun)
	defer cancel()

	cfg := senderConfig(env, g, c.DeliveryFlags, s, log)
	cfg.Linger = c.Linger
	cfg.Concurrency = c.Concurrency
	cfg.BatchGap = c.BatchGap
	cfg.Roster = func() (sender.Roster, error) {
		d, err := resolveDelivery(g, env, nil)
		if err != nil {
			return sender.Roster{}, err
		}
		for _, w := range d.warnings {
			log.Printf("warning: %s", w)
		}
		for name, err := range d.bad {
			log.Printf("peer %s: not delivered: %v", name, err)
		}
		return d.roster(), nil
	}
	if err := sender.Background(ctx, cfg); err != nil {
		log.Printf("sender: %v", err)
		return err
	}
	return nil
}

// senderConfig is what every run of the sender shares: the spool, the log,
// and how to start a background sender.
func senderConfig(env *Env, g *Globals, d DeliveryFlags, s *spool.Spool, log *sender.Log) sender.Config {
	return sender.Config{
		Spool:   s,
		Options: sshpush.Options{Warn: func(m string) { log.Printf("warning: %s", m) }},
		MaxAge:  d.MaxAge,
		Kick:    senderCommand(g, d),
		Now:     env.Now,
		Logf:    log.Printf,
	}
}

// senderCommand starts a background sender: this binary, with the globals
// it was given (Globals.senderArgs).
func senderCommand(g *Globals, d DeliveryFlags) sender.Command {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	return sender.Command{Path: self, Args: g.senderArgs(d), Environ: os.Environ()}
}
