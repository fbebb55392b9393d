// Package sender owns the life of banpush's sender: the lock that makes it
// the one sender of a spool, starting a detached one (Kick), the
// background run that delivers and lingers (Background), the foreground run
// of 'banpush flush' and 'push --wait' that makes a lingering one let go
// (Foreground), the wake-up on new journal records, compaction, the sender
// log, and the one rule that closes the exit race.
//
// The exit race. 'banpush push' appends its records, then tests the lock:
// if a sender holds it, push starts none and relies on that sender. A
// sender, however, may have taken its last look at a peer's queue just
// before the append, and be about to let go. The rule, used by both runs:
//
//	After releasing the lock, look again at the queues of the peers whose
//	queues the run emptied, and, for a foreground run, of the configured
//	peers it did not deliver to. If one holds a record, a sender must run:
//	the background sender takes the lock again (unless another process has
//	it by then, which will deliver), the foreground run starts one (Kick).
//
// It is enough because a push whose lock test failed appended before the
// release, so the look after the release sees its records; a push whose
// test succeeded starts a sender itself. Peers that failed keep their
// queues until the next run anyway (the next push, or the flush timer),
// and are left out so that a peer that is down does not keep a sender
// looping. A background sender that let go because a foreground run asked
// does not look: that run holds the lock next and looks itself. Only
// complete records count (spool.HasPending), so a torn line left by a crash
// does not keep a sender running.
//
// What it trusts: its Config, from the administrator's configuration, and
// the spool, whose files belong to the account running banpush. Peers are
// reached through package deliver, whose answers package sshpush parses.
package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/spool"
)

// ErrBusy is returned by Foreground when the lock could not be had before
// ctx ended.
var ErrBusy = errors.New("sender: another banpush sender holds the spool's sender lock")

// Roster is who a run delivers to.
type Roster struct {
	// Peers are the peers to deliver to.
	Peers []deliver.Peer
	// Live names every configured peer, for compaction (spool.Compact):
	// segments they have all passed are deleted, and the queues of peers
	// not in it are dropped. Nil means the full list is not known: nothing
	// is compacted.
	Live []string
}

// Config says what a run delivers and how.
type Config struct {
	Spool *spool.Spool
	// Roster is called at the start of every round: the inventory may
	// change while a sender runs.
	Roster func() (Roster, error)

	Options     sshpush.Options
	Concurrency int           // peers delivered to at once; 0: deliver's default
	Linger      time.Duration // Background only: keep connections this long after the queues empty
	BatchGap    time.Duration // Background only: deliver.Config.BatchGap
	MaxAge      time.Duration // drop records queued longer ago; 0: deliver's default

	// Kick starts a background sender; Foreground uses it when records
	// came in during its run.
	Kick Command

	// Retry, when set, is told of each retry (deliver.Config.Retry).
	Retry func(peer string, err error, wait time.Duration)

	Now  func() time.Time                 // nil: time.Now
	Logf func(format string, args ...any) // diagnostics; nil discards them

	// afterRound, in tests, runs after a round's deliveries, with the lock
	// still held.
	afterRound func()
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Background is the whole life of a background sender ('banpush send'): it
// takes the lock (or returns at once if another sender has it), delivers
// every queue and lingers for more, lets go, and follows the exit-race
// rule. It stops early, after the batch in flight, when a foreground run
// asks it to (Foreground), and when ctx ends. A nil error means there is
// nothing left for it to do.
func Background(ctx context.Context, cfg Config) error {
	cfg.defaults()
	for ctx.Err() == nil {
		l, ok, err := TryLock(cfg.Spool)
		if err != nil || !ok {
			return err
		}
		r, err := round(ctx, &cfg, cfg.Linger, true)
		l.Release()
		if err != nil {
			return err
		}
		if r.yielded {
			return nil // the run that asked holds the lock now, and looks again itself
		}
		if again, err := mustRun(cfg.Spool, r.emptied()); err != nil || !again {
			return err
		}
	}
	return nil
}

// Foreground delivers every queue now, without lingering, and returns one
// Result per peer. It asks a lingering background sender to let go (it
// finishes its batch in flight, so nothing is sent twice) and waits for the
// lock until ctx ends (ErrBusy). After letting go it follows the exit-race
// rule, starting a background sender with cfg.Kick if records came in.
func Foreground(ctx context.Context, cfg Config) ([]deliver.Result, error) {
	cfg.defaults()
	l, err := lockForeground(ctx, cfg.Spool)
	if err != nil {
		return nil, err
	}
	r, err := round(ctx, &cfg, 0, false)
	l.Release()
	if err != nil {
		return nil, err
	}
	if again, _ := mustRun(cfg.Spool, append(r.emptied(), r.untried()...)); again {
		if err := Kick(cfg.Spool, cfg.Kick); err != nil {
			cfg.Logf("sender: records came in during the run, and no sender could be started: %v", err)
		}
	}
	return r.results, nil
}

// lockForeground takes the lock, asking whoever holds it to let go, until
// ctx ends.
func lockForeground(ctx context.Context, s *spool.Spool) (*Lock, error) {
	for {
		l, ok, err := TryLock(s)
		if err != nil || ok {
			return l, err
		}
		if _, err := askYield(s.Dir()); err != nil {
			return nil, err
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ErrBusy
		case <-t.C:
		}
	}
}

// roundResult is what one round did.
type roundResult struct {
	results []deliver.Result
	live    []string // every configured peer, delivered to or not (nil: unknown)
	yielded bool     // a foreground run asked for the lock
}

// emptied lists the peers whose queues the round emptied.
func (r roundResult) emptied() []string {
	var out []string
	for _, res := range r.results {
		if res.Class == sshpush.ClassOK {
			out = append(out, res.Peer)
		}
	}
	return out
}

// untried lists the configured peers the round did not deliver to (a
// flush of some peers only, a peer whose settings are wrong).
func (r roundResult) untried() []string {
	tried := map[string]bool{}
	for _, res := range r.results {
		tried[res.Peer] = true
	}
	var out []string
	for _, p := range r.live {
		if !tried[p] {
			out = append(out, p)
		}
	}
	return out
}

// watchedPoll is how often a lingering peer looks at the journal when
// inotify tells it of every append: a safety net only. Every look reads the
// journal once per peer, which at deliver's default of 250 ms cost a
// sender lingering on 500 peers 2,000 reads a second.
const watchedPoll = 5 * time.Second

// round delivers every queue once, lingering for linger, with the lock
// held, then compacts the spool. A background round listens for a
// foreground run's request to let go.
func round(ctx context.Context, cfg *Config, linger time.Duration, background bool) (roundResult, error) {
	roster, err := cfg.Roster()
	if err != nil {
		return roundResult{}, err
	}
	r := roundResult{live: roster.Live}
	var stop <-chan struct{}
	if background {
		asked, unlisten, err := listenYield(cfg.Spool.Dir())
		if err != nil {
			return roundResult{}, err
		}
		defer unlisten()
		stop = asked
	}
	wake := deliver.NewNotifier()
	var poll time.Duration // deliver's default
	if linger > 0 {
		if unwatch, err := watch(cfg.Spool.JournalDir(), wake); err == nil {
			defer unwatch()
			poll = watchedPoll
		} else {
			cfg.Logf("warning: %v (polling instead)", err)
		}
	}
	start := cfg.Now()
	r.results = deliver.Run(ctx, deliver.Config{
		Spool:       cfg.Spool,
		Peers:       roster.Peers,
		Options:     cfg.Options,
		Concurrency: cfg.Concurrency,
		Linger:      linger,
		BatchGap:    cfg.BatchGap,
		MaxAge:      cfg.MaxAge,
		Wake:        wake,
		Poll:        poll,
		Stop:        stop,
		Retry:       cfg.Retry,
		Now:         cfg.Now,
		Logf:        cfg.Logf,
	})
	select {
	case <-stop:
		r.yielded = true
	default:
	}
	if cfg.afterRound != nil {
		cfg.afterRound()
	}
	if background {
		for _, res := range r.results {
			if res.Batches > 0 || res.Class != sshpush.ClassOK {
				cfg.Logf("peer %s: %s (%d batches, %d connections)", res.Peer, res.Summary(), res.Batches, res.Dials)
			}
		}
		cfg.Logf("sender: round done in %s", cfg.Now().Sub(start).Round(time.Millisecond))
	}
	if roster.Live != nil {
		if err := cfg.Spool.Compact(roster.Live); err != nil {
			cfg.Logf("sender: compacting the spool: %v", err)
		}
	}
	return r, nil
}

// mustRun is the look after letting go: whether any of peers has a record
// queued, so that a sender must run.
func mustRun(s *spool.Spool, peers []string) (bool, error) {
	if len(peers) == 0 {
		return false, nil
	}
	pending, err := s.HasPending(peers)
	if err != nil {
		return false, fmt.Errorf("sender: %w", err)
	}
	return pending, nil
}
