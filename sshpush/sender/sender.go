// Package sender owns the life of banpush's sender: the lock that makes it
// the one sender of a spool, starting a detached one (Kick), the
// background run that delivers, lingers and retries (Background), the
// foreground run of 'banpush flush' and 'push --wait' that makes a
// background one let go (Foreground), the wake-up on new journal records,
// the inventory read again while it runs, compaction, the sender log, and
// the one rule that closes the exit race. Package deliver is the engine it
// runs: one worker per peer, none waiting for another.
//
// A background sender runs as long as any peer has something to deliver:
// a peer that is down keeps it running, retried every few seconds, while
// the other peers' workers deliver each new record as it comes (see
// package deliver). It lets go once every peer's queue has been empty for
// the linger, when a foreground run asks, or when its context ends.
//
// The exit race. 'banpush push' appends its records, then tests the lock:
// if a sender holds it, push starts none and relies on that sender. A
// sender, however, may have taken its last look at a peer's queue just
// before the append, and be about to let go. The rule, used by both runs:
//
//	After releasing the lock, look again at the queues of the peers the
//	run delivered to, and, for a foreground run, of every configured peer.
//	If one holds a record, a sender must run: the background sender takes
//	the lock again (unless another process has it by then, which will
//	deliver), the foreground run starts one (Kick).
//
// It is enough because a push whose lock test failed appended before the
// release, so the look after the release sees its records; a push whose
// test succeeded starts a sender itself. A background sender lets go of
// its own accord only when every queue it delivers is empty, so what the
// look finds is new. Peers it cannot deliver to (settings that cannot be
// resolved) are left out of its look, so that they do not keep a sender
// looping; a foreground run looks at them too, and what it leaves queued
// (a peer that is still down at its deadline) goes to a background
// sender. A background sender that let go because a foreground run asked
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
	"reflect"
	"slices"
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
	// Notes are what the sender logs about the inventory (warnings, peers
	// it cannot deliver to): at the start, and again when they change.
	Notes []string
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
	RetryMax    time.Duration // at most this from one try of a failing peer to the next; 0: deliver's default

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
// every queue, lingers for more and retries failing peers for as long as
// any peer has a record to deliver, lets go, and follows the exit-race
// rule. It stops early, after the batch in flight, when a foreground run
// asks it to (Foreground), and when ctx ends. A nil error means there is
// nothing left for it to do, or that ctx ended.
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
		if r.yielded || ctx.Err() != nil {
			return nil // the run that asked holds the lock now, and looks again itself
		}
		if again, err := mustRun(cfg.Spool, r.delivered()); err != nil || !again {
			return err
		}
	}
	return nil
}

// Foreground delivers every queue now, without lingering, and returns one
// Result per peer once each queue is empty or its peer has failed (a peer
// that may come back is retried until ctx ends). Meanwhile the peers whose
// queues are empty deliver whatever comes into the journal. It asks a
// background sender to let go (it finishes its batch in flight, so nothing
// is sent twice) and waits for the lock until ctx ends (ErrBusy). After
// letting go it follows the exit-race rule, starting a background sender
// with cfg.Kick if anything is left to deliver.
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
	if again, _ := mustRun(cfg.Spool, append(r.delivered(), r.untried()...)); again {
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

// delivered lists the peers the round delivered to.
func (r roundResult) delivered() []string {
	var out []string
	for _, res := range r.results {
		out = append(out, res.Peer)
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

// rosterEvery is how often a background round reads the inventory again:
// a sender that retries a peer that is down may run for hours. A variable
// for tests.
var rosterEvery = 10 * time.Second

// round delivers every queue, lingering for linger, with the lock held,
// then compacts the spool. A background round listens for a foreground
// run's request to let go, and reads the inventory again every rosterEvery:
// when it changed, the round's delivery ends (after the batches in
// flight) and starts again with the new peers.
func round(ctx context.Context, cfg *Config, linger time.Duration, background bool) (roundResult, error) {
	roster, err := cfg.Roster()
	if err != nil {
		return roundResult{}, err
	}
	logNotes(cfg, nil, roster.Notes)
	r := roundResult{live: roster.Live}
	var asked <-chan struct{}
	if background {
		ch, unlisten, err := listenYield(cfg.Spool.Dir())
		if err != nil {
			return roundResult{}, err
		}
		defer unlisten()
		asked = ch
	}
	// Every run watches the journal: a lingering peer, an idle one and,
	// in a foreground run, a peer whose queue is empty while another is
	// retried, all send what a push appends as it comes.
	wake := deliver.NewNotifier()
	var poll time.Duration // deliver's default
	if unwatch, err := watch(cfg.Spool.JournalDir(), wake); err == nil {
		defer unwatch()
		poll = watchedPoll
	} else {
		cfg.Logf("warning: %v (polling instead)", err)
	}
	start := cfg.Now()
	for {
		var changed *Roster
		r.results, changed = deliverUntil(ctx, cfg, roster, linger, wake, poll, asked, background)
		if changed == nil {
			break
		}
		cfg.Logf("sender: the inventory changed: %d peers to deliver to", len(changed.Peers))
		logNotes(cfg, roster.Notes, changed.Notes)
		roster = *changed
		r.live = roster.Live
	}
	select {
	case <-asked:
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
	if r.live != nil {
		if err := cfg.Spool.Compact(r.live); err != nil {
			cfg.Logf("sender: compacting the spool: %v", err)
		}
	}
	return r, nil
}

// deliverUntil runs one delivery (deliver.Run) to roster's peers. It stops
// it when a foreground run asks (asked) and, in the background, when the
// inventory has changed: then it returns the new roster.
func deliverUntil(ctx context.Context, cfg *Config, roster Roster, linger time.Duration, wake *deliver.Notifier,
	poll time.Duration, asked <-chan struct{}, background bool) ([]deliver.Result, *Roster) {
	stop := make(chan struct{})
	done := make(chan struct{})
	changed := make(chan Roster, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var tick <-chan time.Time
		if background {
			t := time.NewTicker(rosterEvery)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-asked:
				close(stop)
				return
			case <-done:
				return
			case <-tick:
				next, err := cfg.Roster()
				if err != nil {
					cfg.Logf("sender: reading the inventory again: %v", err)
				} else if !sameRoster(next, roster) {
					changed <- next
					close(stop)
					return
				}
			}
		}
	}()
	results := deliver.Run(ctx, deliver.Config{
		Spool:       cfg.Spool,
		Peers:       roster.Peers,
		Options:     cfg.Options,
		Concurrency: cfg.Concurrency,
		Linger:      linger,
		Persist:     background,
		BatchGap:    cfg.BatchGap,
		MaxAge:      cfg.MaxAge,
		MaxBackoff:  cfg.RetryMax,
		Wake:        wake,
		Poll:        poll,
		Stop:        stop,
		Retry:       cfg.Retry,
		Now:         cfg.Now,
		Logf:        cfg.Logf,
	})
	close(done)
	<-watched
	select {
	case next := <-changed:
		return results, &next
	default:
		return results, nil
	}
}

// sameRoster reports whether two readings of the inventory deliver to the
// same peers the same way.
func sameRoster(a, b Roster) bool {
	return reflect.DeepEqual(a.Peers, b.Peers) && slices.Equal(a.Live, b.Live)
}

// logNotes logs the notes that were not among the last ones.
func logNotes(cfg *Config, last, notes []string) {
	for _, n := range notes {
		if !slices.Contains(last, n) {
			cfg.Logf("%s", n)
		}
	}
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
