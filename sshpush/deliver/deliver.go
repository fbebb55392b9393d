// Package deliver is banpush's delivery engine: it reads each peer's queue
// from the spool and delivers it in batches over one SSH connection per
// peer, moving the peer's cursor only after the receiver's answer
// (wire.Answer). Package sender owns the engine's life around it: the lock,
// starting a detached sender, its rounds and the exit race.
//
// Every peer has a worker of its own, and no peer waits for another. A
// peer that is down, blackholed, stalling, slow or refusing is retried on
// its own schedule (exponential backoff with jitter, at most MaxBackoff
// from one try's start to the next) and never holds a slot that another
// peer needs: the slots that bound how many peers are dialled and sent to
// at once (Concurrency) are lent for SlotLease at most, and a peer that
// has failed retries on slots of its own.
//
// Run is used two ways. The background sender, spawned by 'banpush push',
// runs with Persist and a Linger: after a peer's queue is empty it keeps
// the connection open for a while, so that the next bans of a burst go out
// as new sessions on it, then closes it and waits for the journal to grow.
// It retries every failure, until the peer takes its queue. 'banpush flush' and 'push
// --wait' run with no Linger and a deadline: a peer that fails in a way a
// retry may fix (unreachable, timeout, busy) is retried until the
// deadline, any other failure is reported at once; meanwhile the peers
// whose queues are empty deliver whatever comes into the journal.
//
// What it trusts: its Config (peers and settings come from the
// administrator) and the spool, whose damaged lines the spool package skips.
// Peers' answers are parsed by package sshpush. The caller must hold the
// sender lock (package sender) for the whole of Run.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/spool"
)

// Defaults for the zero values of Config.
const (
	DefaultConcurrency  = 32
	DefaultLinger       = 10 * time.Second
	DefaultMaxAge       = 24 * time.Hour
	DefaultBatchRecords = 1000
	DefaultBatchBytes   = 256 << 10
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 4 * time.Second
	DefaultSlotLease    = 2 * time.Second
	DefaultPoll         = 250 * time.Millisecond
)

// Peer is one peer to deliver to.
type Peer struct {
	Name   string
	Target sshpush.Target
}

// Config says what to deliver and how.
type Config struct {
	Spool   *spool.Spool
	Peers   []Peer
	Options sshpush.Options

	// Concurrency bounds how many peers are connected to or sent to at
	// once; 0 means DefaultConcurrency. A peer that has failed retries
	// outside this bound, on as many slots again.
	Concurrency int
	// SlotLease is how long a peer keeps its slot while it dials or sends;
	// past it, the slot goes to the next peer and the slow one carries on
	// without it. 0 means DefaultSlotLease.
	SlotLease time.Duration
	// Linger is how long a peer's connection stays open once its queue is
	// empty, waiting for more; 0 means none (flush).
	Linger time.Duration
	// Persist makes Run the background sender's: every failure is retried
	// (a key fixed, a host key corrected, a receiver upgraded bring the
	// peer back with nobody's help), and Run returns only once every
	// queue has been empty for Linger. Without it, a failure that no retry
	// fixes (authentication, host key, refusal) ends the peer's tries.
	Persist bool
	// BatchGap is how long, at least, a peer waits after a batch before it
	// sends the next one: the bans of a burst then go out in a few larger
	// batches, each costing the peer one session round, one log write and
	// one fsync, instead of one batch per push. A ban after a quiet spell
	// goes out at once; 0 means no wait (flush).
	BatchGap time.Duration
	// MaxAge drops records queued longer ago than this; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// BatchRecords and BatchBytes bound one batch; 0 means the defaults.
	BatchRecords, BatchBytes int
	// MinBackoff and MaxBackoff bound the wait between tries of a failing
	// peer, from one try's start to the next; 0 means the defaults. A
	// peer that comes back gets its queue within about MaxBackoff (plus
	// its connect timeout, for a peer that dropped packets).
	MinBackoff, MaxBackoff time.Duration

	// Wake, when set, is signalled whenever the journal may have grown.
	// Waiting peers also look at the journal every Poll on their own
	// (0 means DefaultPoll): often when nothing calls Notify, seldom
	// when a watch of the journal does, since every look costs each
	// peer a read of the journal.
	Wake *Notifier
	Poll time.Duration
	// Retry, when set, is told of each failure that a retry follows,
	// before the wait: a person watching a foreground run sees retries as
	// they happen.
	Retry func(peer string, err error, wait time.Duration)
	// Stop, when closed, makes every peer finish the batch in flight and
	// return without lingering or retrying: a foreground flush wants the
	// sender lock. Unlike cancelling ctx, it never interrupts a batch, so
	// it causes no duplicate.
	Stop <-chan struct{}

	Now  func() time.Time
	Logf func(format string, args ...any) // diagnostics; nil discards them
}

// FailGap is the least time from the end of a fail request (failure
// reports) to one peer to the start of the next: reports queued in between join the next request, so that
// fleet detection costs each peer's sshd at most one session a second,
// however many failures there are.
const FailGap = time.Second

// Result is what happened to one peer in a Run.
type Result struct {
	Peer      string
	Class     sshpush.Class // ClassOK when the queue was emptied
	Err       error         // the last failure, when Class is not ClassOK
	Delivered int           // bans the peer wrote to its log
	Unbanned  int           // unbans the peer wrote to its log
	Reported  int           // failure reports the peer counted
	Refused   int           // records the peer refused (policy, rate limit, unbans it does not allow)
	Dropped   int           // records expired before delivery
	Cancelled int           // bans not delivered: an unban of their address was queued after them
	Skipped   int           // damaged spool lines passed over
	Refusal   string        // why the peer refused its first refused record ("line 3: refused: private address")
	Batches   int
	Dials     int
}

// Run delivers every peer's queue and returns one Result per peer, in the
// order of cfg.Peers. It returns once every peer is idle at the same time
// (its queue empty and lingered out; without Persist, also a peer that
// failed in a way no retry fixes), when Stop closes, or when ctx ends.
// Until then, an idle peer delivers whatever comes into the journal.
func Run(ctx context.Context, cfg Config) []Result {
	cfg.defaults()
	r := &run{
		cfg:     &cfg,
		healthy: newSlots(cfg.Concurrency, cfg.SlotLease),
		failing: newSlots(cfg.Concurrency, cfg.SlotLease),
		anySent: new(atomic.Int64),
		busy:    len(cfg.Peers),
		quit:    make(chan struct{}),
	}
	if r.busy == 0 {
		close(r.quit)
	}
	results := make([]Result, len(cfg.Peers))
	var wg sync.WaitGroup
	for i, p := range cfg.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{cfg: &cfg, shared: r, peer: p, res: &results[i]}
			w.res.Peer = p.Name
			w.run(ctx)
		}()
	}
	wg.Wait()
	return results
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.SlotLease <= 0 {
		c.SlotLease = DefaultSlotLease
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.BatchRecords <= 0 {
		c.BatchRecords = DefaultBatchRecords
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MinBackoff = min(c.MinBackoff, c.MaxBackoff)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Wake == nil {
		c.Wake = NewNotifier()
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
}

// run is what the workers of one Run share.
type run struct {
	cfg *Config
	// healthy lends slots to peers that have not failed, failing to those
	// that have: a peer that is down never waits in front of one that is
	// up.
	healthy, failing *slots
	anySent          *atomic.Int64 // when any peer's last batch was answered (Unix ns)

	mu   sync.Mutex
	busy int           // workers not idle
	quit chan struct{} // closed once every worker is idle at the same time
}

// idle tells the Run that a worker has nothing to do. When every worker
// is idle, the Run ends.
func (r *run) idle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy--
	if r.busy == 0 {
		close(r.quit)
	}
}

// wake tells the Run that an idle worker has work again; false means the
// Run has ended and the worker must return.
func (r *run) wake() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.quit:
		return false
	default:
	}
	r.busy++
	return true
}

// slots bounds how many peers dial or send at once. A slot is lent for
// lease at most: a peer that takes longer (a blackholed address, a tarpit,
// an sshd at MaxStartups) gives it up and carries on without one, so that
// a few bad peers cannot hold back the rest.
type slots struct {
	ch    chan struct{}
	lease time.Duration
}

func newSlots(n int, lease time.Duration) *slots {
	return &slots{ch: make(chan struct{}, n), lease: lease}
}

// take waits for a slot, and returns the function that gives it back
// (early, if the lease ends first; calling it again does nothing). It
// fails when ctx ends or stop closes first.
func (s *slots) take(ctx context.Context, stop <-chan struct{}) (func(), error) {
	select {
	case s.ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-stop:
		return nil, errStopped
	}
	var once sync.Once
	give := func() { once.Do(func() { <-s.ch }) }
	t := time.AfterFunc(s.lease, give)
	return func() { t.Stop(); give() }, nil
}

// errStopped: Config.Stop closed while a peer waited for a slot.
var errStopped = errors.New("deliver: stopped")

// Notifier wakes every waiter at once: C returns a channel that is closed
// at the next Notify.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier { return &Notifier{ch: make(chan struct{})} }

// C returns the channel closed by the next Notify.
func (n *Notifier) C() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Notify wakes everyone waiting on a channel from C.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

// Summary is a one-line account of a Result, for logs and reports.
func (r Result) Summary() string {
	s := fmt.Sprintf("%s: delivered %d, refused %d, dropped %d", r.Class, r.Delivered, r.Refused, r.Dropped)
	if r.Unbanned > 0 || r.Cancelled > 0 {
		s += fmt.Sprintf(", unbanned %d, cancelled %d", r.Unbanned, r.Cancelled)
	}
	if r.Err != nil {
		s += ": " + sshpush.Reason(r.Err)
	}
	return s
}
