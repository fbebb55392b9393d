package main

import (
	"context"
	"fmt"
	"maps"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// SendCmd is the background sender that push starts.
type SendCmd struct {
	DeliveryFlags
	Linger      time.Duration `help:"Keep connections open this long after the queue empties." default:"10s"`
	RetryMax    time.Duration `help:"Try a failing peer again at most this long after the last try began (backoff with jitter up to it)." default:"4s"`
	MaxRun      time.Duration `help:"Stop after this long even if a peer still fails (0s: run while any peer has a ban to deliver); the next push or flush goes on." default:"0s"`
	Concurrency int           `help:"Peers delivered to at once." default:"32"`
	BatchGap    time.Duration `help:"While lingering, wait at least this long after a batch before sending the next, so that a burst goes out in fewer, larger batches (a ban after a quiet spell goes at once; 0s: never wait)." default:"10ms"`
}

// Help explains the sender.
func (c *SendCmd) Help() string {
	return `send is the background sender: 'banpush push' starts it when none is running,
detached from fail2ban. It takes the spool's sender lock (at most one runs per
spool) and delivers every peer's queue over one SSH connection per peer, each
peer on its own: a peer that is down, slow or refusing never delays another.
After a peer's queue empties it keeps the connection for --linger, then waits
for the next ban. A failing peer (unreachable, timeout, authentication, host
key, an old receiver) is retried with backoff and jitter, at most --retry-max
apart, and gets its queue within seconds of coming back; 'banpush status'
shows its failure meanwhile. The sender exits once every queue has been empty
for --linger. A foreground 'banpush flush' or 'push --wait' makes it finish
its batch and exit. Its diagnostics go to syslog and to sender.log in the
spool directory.`
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
	if c.MaxRun > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.MaxRun)
		defer cancel()
	}

	cfg := senderConfig(env, g, c.DeliveryFlags, s, log)
	cfg.Linger = c.Linger
	cfg.Concurrency = c.Concurrency
	cfg.BatchGap = c.BatchGap
	cfg.RetryMax = c.RetryMax
	cfg.Roster = func() (sender.Roster, error) {
		d, err := loadRoster(env, g)
		if err != nil {
			return sender.Roster{}, err
		}
		r := senderRoster(d)
		for _, w := range d.Warnings {
			r.Notes = append(r.Notes, "warning: "+w)
		}
		for _, name := range slices.Sorted(maps.Keys(d.Bad)) {
			r.Notes = append(r.Notes, fmt.Sprintf("peer %s: not delivered: %v", name, d.Bad[name]))
		}
		return r, nil
	}
	if err := sender.Background(ctx, cfg); err != nil {
		log.Printf("sender: %v", err)
		return err
	}
	return nil
}
