// Package deliver is banpush's sender: it reads each peer's queue from the
// spool and delivers it in batches over one SSH connection per peer, moving
// the peer's cursor only after the receiver's answer (wire.Answer).
//
// Run is used two ways. The background sender, spawned by 'banpush push',
// runs with a Linger: after a peer's queue is empty it keeps the connection
// open for a while, so that the next bans of a burst go out as new sessions
// on it. 'banpush flush' and 'push --wait' run with no Linger and a
// deadline, and report per peer.
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
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/wire"
)

// Defaults for the zero values of Config.
const (
	DefaultConcurrency  = 32
	DefaultLinger       = 10 * time.Second
	DefaultMaxAge       = 24 * time.Hour
	DefaultBatchRecords = 1000
	DefaultBatchBytes   = 256 << 10
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
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
	// once; 0 means DefaultConcurrency.
	Concurrency int
	// Linger is how long a peer's connection stays open once its queue is
	// empty, waiting for more; 0 means none (flush).
	Linger time.Duration
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
	// MinBackoff and MaxBackoff bound the wait between retries of a peer
	// after a retryable failure; 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration

	// Wake, when set, is signalled whenever the journal may have grown.
	// Lingering peers also look at the journal every Poll on their own
	// (0 means DefaultPoll): often when nothing calls Notify, seldom
	// when a watch of the journal does, since every look costs each
	// peer a read of the journal.
	Wake *Notifier
	Poll time.Duration
	// Retry, when set, is told of each retryable failure before the wait
	// that follows it: a person watching a foreground run sees retries as
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

// Result is what happened to one peer in a Run.
type Result struct {
	Peer      string
	Class     sshpush.Class // ClassOK when the queue was emptied
	Err       error         // the last failure, when Class is not ClassOK
	Delivered int           // bans the peer wrote to its log
	Unbanned  int           // unbans the peer wrote to its log
	Refused   int           // records the peer refused (policy, rate limit, unbans it does not allow)
	Dropped   int           // records expired before delivery
	Cancelled int           // bans not delivered: an unban of their address was queued after them
	Skipped   int           // damaged spool lines passed over
	Refusal   string        // why the peer refused its first refused record ("line 3: refused: private address")
	Batches   int
	Dials     int
}

// Run delivers every peer's queue and returns one Result per peer, in the
// order of cfg.Peers. It returns when every queue is empty and no peer has
// lingered with nothing to do for cfg.Linger, when a peer has failed in a
// way a retry cannot fix, or when ctx ends; a peer that keeps failing with
// retryable errors is retried with exponential backoff and jitter until ctx
// ends.
func Run(ctx context.Context, cfg Config) []Result {
	cfg.defaults()
	sem := make(chan struct{}, cfg.Concurrency)
	sent := new(atomic.Int64) // when any peer's last batch was answered (Unix ns)
	results := make([]Result, len(cfg.Peers))
	var wg sync.WaitGroup
	for i, p := range cfg.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{cfg: &cfg, peer: p, sem: sem, anySent: sent, res: &results[i]}
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

// worker delivers one peer's queue.
type worker struct {
	// unsavedSince is when the state first changed after the last
	// saveState; zero when it is saved.
	unsavedSince time.Time

	// The peer's cursor, kept here while the worker runs and written to
	// the spool cursorEvery after it first moves (see saveCursor).
	pos        spool.Position
	posKnown   bool           // pos has been read from the spool
	diskPos    spool.Position // the cursor as last written
	movedSince time.Time      // when pos first moved past diskPos

	cfg      *Config
	peer     Peer
	sem      chan struct{}
	res      *Result
	client   *sshpush.Client
	stream   *sshpush.Stream // batches go out on it while it works
	noStream bool            // the receiver does not know streams
	state    spool.State
	noSave   bool // the state on disk could not be read: leave it alone
	cancels  *spool.Cancels
	sentAt   time.Time     // when the last batch was answered (or failed)
	anySent  *atomic.Int64 // the same for every peer of the Run, in Unix ns
}

// A worker keeps its peer's cursor in memory, and its state (the counters
// 'banpush status' shows), and writes them to the spool later: a cursor
// write syncs the journal segment, replaces the cursor file and syncs its
// directory, and a state save replaces a file. Written after every batch,
// they cost a burst's sender more CPU than the deliveries, and their syncs
// held up every push's fsync; written right after a peer's first batch,
// they competed with the other peers' handshakes still under way (0.8 s of
// a 500-peer fan-out's 6.7 s). So each is written saveAfter after it first
// changed, once no peer of the Run has had a batch answered for quietFor,
// or saveAtMost after it changed, busy or not; and when the worker ends or
// yields. A sender that is killed, or a machine that loses power, resends
// at most the deliveries of the last saveAtMost (of the last saveAfter when
// it was not busy), which at-least-once delivery allows and the receivers'
// logs and fail2ban take as repeats.
const (
	saveAfter  = time.Second
	quietFor   = 100 * time.Millisecond
	saveAtMost = 10 * time.Second
)

// due reports whether a write of what first changed at since is due now
// (see saveAfter), and when to look again if not.
func (w *worker) due(since time.Time) (bool, time.Duration) {
	waited := w.cfg.Now().Sub(since)
	if waited < saveAfter {
		return false, saveAfter - waited
	}
	if waited >= saveAtMost {
		return true, 0
	}
	if quiet := time.Since(time.Unix(0, w.anySent.Load())); quiet < quietFor {
		return false, quietFor - quiet
	}
	return true, 0
}

func (w *worker) run(ctx context.Context) {
	defer w.closeClient()
	st, err := w.cfg.Spool.LoadState(w.peer.Name)
	w.logIf(err)
	var ce *spool.CorruptFileError
	if err != nil && !errors.As(err, &ce) {
		// Saving a state that could not be read would zero its counters.
		w.noSave = true
	}
	w.state = st
	defer w.saveState()
	defer func() { w.logIf(w.saveCursor(true)) }()

	backoff := w.cfg.MinBackoff
	idleSince := time.Time{}
	for {
		wake := w.cfg.Wake.C() // before looking, so no append is missed
		moved, err := w.drain(ctx)
		if err != nil {
			w.fail(ctx, err)
			var se *sshpush.Error
			retry := errors.As(err, &se) && se.Retryable()
			if !retry || sshpush.Ended(ctx) {
				return
			}
			w.closeClient()
			wait := jitter(backoff)
			if w.cfg.Retry != nil {
				w.cfg.Retry(w.peer.Name, err, wait)
			}
			if !sleep(ctx, w.cfg.Stop, wait) {
				return
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
			continue
		}
		backoff = w.cfg.MinBackoff
		w.res.Class, w.res.Err = sshpush.ClassOK, nil
		if moved {
			idleSince = time.Time{} // new records: the linger starts again now they are out
		}
		// Queue empty: linger for more, or finish. Save the state and the
		// cursor when they are due (saveAfter), so that 'banpush status'
		// shows the delivery while we linger.
		if w.cfg.Linger <= 0 || stopped(w.cfg.Stop) {
			return
		}
		now := w.cfg.Now()
		if idleSince.IsZero() {
			idleSince = now
			if w.unsavedSince.IsZero() {
				w.unsavedSince = now
			}
		}
		left := w.cfg.Linger - now.Sub(idleSince)
		wait := min(left, w.cfg.Poll)
		if !w.unsavedSince.IsZero() {
			ok, again := w.due(w.unsavedSince)
			if ok {
				w.saveState()
			} else {
				wait = min(wait, again)
			}
		}
		if w.pos != w.diskPos {
			ok, again := w.due(w.movedSince)
			if ok {
				if err := w.saveCursor(true); err != nil {
					w.fail(ctx, err)
					return
				}
			} else {
				wait = min(wait, again)
			}
		}
		if left <= 0 {
			return
		}
		wait = max(wait, time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.cfg.Stop:
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
			// Look at the journal again (a missed Wake), and write a
			// cursor that waited for cursorEvery.
		}
	}
}

// saveCursor writes the peer's cursor to the spool (Spool.Advance: the
// records behind it synced first, the file replaced atomically) if it has
// moved since the last write and, unless force, the write is due.
func (w *worker) saveCursor(force bool) error {
	if !w.posKnown || w.pos == w.diskPos {
		return nil
	}
	if ok, _ := w.due(w.movedSince); !ok && !force {
		return nil
	}
	if err := w.cfg.Spool.Advance(w.peer.Name, w.pos); err != nil {
		return err
	}
	w.diskPos = w.pos
	return nil
}

// drain sends batches until the peer's queue is empty or one fails.
//
// A batch is all bans or all unbans, in journal order: a run of bans goes
// out as a ban request (on the stream), the unbans after it as an unban
// request, and so on, so that each peer sees them in the order they were
// queued. Entries for other peers and bans an unban cancelled are passed
// over. moved reports whether the cursor moved: records were acknowledged
// or passed over.
func (w *worker) drain(ctx context.Context) (moved bool, err error) {
	if !w.posKnown {
		pos, err := w.cfg.Spool.Cursor(w.peer.Name)
		if err != nil {
			var ce *spool.CorruptFileError
			if !errors.As(err, &ce) {
				return false, err
			}
			w.cfg.Logf("peer %s: %v", w.peer.Name, err)
		}
		w.pos, w.diskPos, w.posKnown = pos, pos, true
	}
	for !stopped(w.cfg.Stop) {
		// In a burst, what comes in the next moments joins the next
		// batch (Config.BatchGap).
		if d := w.cfg.BatchGap - time.Since(w.sentAt); d > 0 && !sleep(ctx, w.cfg.Stop, d) {
			return moved, nil
		}
		pos := w.pos
		b, err := w.cfg.Spool.Read(pos, w.cfg.BatchRecords, w.cfg.BatchBytes)
		if err != nil {
			return moved, err
		}
		for _, k := range b.Skipped {
			w.cfg.Logf("peer %s: %s", w.peer.Name, k)
			w.res.Skipped += k.Lines
		}
		if b.Next == pos {
			return moved, nil // nothing new
		}
		if w.cancels, err = w.cfg.Spool.LoadCancels(w.cancels); err != nil {
			return moved, err
		}
		enc := w.encode(b.Entries)
		upto := enc.end // entries acknowledged by this round
		limited := false
		if len(enc.batch) > 0 {
			ack, err := w.send(ctx, enc.kind, enc.batch)
			if err != nil {
				return moved, err
			}
			if ack.Limited > 0 { // sshpush checked LimitedFrom against the lines sent
				upto, limited = enc.lineEntry[ack.LimitedFrom-1], true
			}
		}
		for _, i := range enc.cancelled {
			if i < upto {
				w.res.Cancelled++
				w.state.Cancelled++
			}
		}
		for _, i := range enc.expired {
			if i < upto {
				e := b.Entries[i]
				w.res.Dropped++
				w.state.Dropped++
				w.cfg.Logf("peer %s: dropped %s of %s: expired (queued %s)", w.peer.Name, e.Kind, e.Record.Addr, e.Queued.Format(time.RFC3339))
			}
		}
		next := b.Next
		if upto < len(b.Entries) {
			next = pos
			if upto > 0 {
				next = b.Entries[upto-1].Next
			}
		}
		if pos.Less(next) {
			if w.pos == w.diskPos {
				w.movedSince = w.cfg.Now()
			}
			w.pos, moved = next, true
			if err := w.saveCursor(false); err != nil {
				return moved, err
			}
		}
		if limited {
			n := len(b.Entries) - upto
			return moved, &sshpush.Error{Peer: w.peer.Name, Class: sshpush.ClassBusy,
				Err: fmt.Errorf("the peer's rate limit for this host is reached: %d records stay queued", n)}
		}
	}
	return moved, nil
}

// stopped reports whether stop is closed; a nil stop never is.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// encoded is one batch built from the entries of a Read.
type encoded struct {
	kind      spool.Kind
	batch     []byte
	end       int   // the batch covers entries[:end]; the rest are of the other kind
	lineEntry []int // lineEntry[i]: the index in entries of the batch's line i+1 (its first occurrence)
	expired   []int // indexes of the expired entries before end
	cancelled []int // indexes of the cancelled bans before end
}

// encode builds a batch from the first entries that are all of one kind,
// leaving out entries for other peers, expired records and cancelled bans.
// An address queued twice is sent once, with the later end of ban (a
// re-ban with a longer bantime wins).
func (w *worker) encode(entries []spool.Entry) encoded {
	now := w.cfg.Now()
	enc := encoded{end: len(entries)}
	line := make(map[[16]byte]int, len(entries))
	var recs []record.Record
	first := true
	for i, e := range entries {
		switch {
		case !e.For(w.peer.Name):
			continue
		case w.cancels.Cancelled(e):
			enc.cancelled = append(enc.cancelled, i)
			continue
		case first:
			enc.kind, first = e.Kind, false
		case e.Kind != enc.kind:
			enc.end = i
		}
		if enc.end < len(entries) {
			break
		}
		if expired(e, now, w.cfg.MaxAge) {
			enc.expired = append(enc.expired, i)
			continue
		}
		k := e.Record.Addr.As16()
		if j, ok := line[k]; ok {
			if banEnd(e.Record) > banEnd(recs[j]) {
				recs[j] = e.Record
			}
			continue
		}
		line[k] = len(recs)
		recs = append(recs, e.Record)
		enc.lineEntry = append(enc.lineEntry, i)
	}
	for _, r := range recs {
		enc.batch = wire.AppendRecord(enc.batch, r)
	}
	return enc
}

// banEnd is when a record's ban ends, as far as it says: never for a
// permanent ban, 0 when it gives no bantime.
func banEnd(r record.Record) int64 {
	switch {
	case r.BanTime == record.Permanent:
		return math.MaxInt64
	case r.BanTime > 0:
		return r.Time + r.BanTime
	}
	return 0
}

// expired reports whether a record is older than its bantime or maxAge.
func expired(e spool.Entry, now time.Time, maxAge time.Duration) bool {
	if now.Sub(e.Queued) > maxAge {
		return true
	}
	r := e.Record
	return r.Time > 0 && r.BanTime > 0 && now.Unix() > r.Time+r.BanTime
}

// send delivers one batch of bans or unbans, connecting first if needed.
func (w *worker) send(ctx context.Context, kind spool.Kind, batch []byte) (sshpush.Ack, error) {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return sshpush.Ack{}, &sshpush.Error{Peer: w.peer.Name, Class: sshpush.ClassTimeout, Err: ctx.Err()}
	}
	defer func() {
		<-w.sem
		w.sentAt = time.Now()
		w.anySent.Store(w.sentAt.UnixNano())
	}()
	if w.client == nil {
		w.res.Dials++
		c, err := sshpush.Dial(ctx, w.peer.Target, w.cfg.Options)
		if err != nil {
			return sshpush.Ack{}, err
		}
		w.client = c
	}
	var ack sshpush.Ack
	var err error
	if kind == spool.Unban {
		ack, err = w.client.Unban(ctx, batch)
	} else {
		ack, err = w.ban(ctx, batch)
	}
	if err != nil {
		if sshpush.ClassOf(err) != sshpush.ClassTooOld {
			w.closeClient()
		}
		return sshpush.Ack{}, err
	}
	refused := ack.Refused - ack.Limited // the limited ones stay queued
	w.res.Batches++
	if kind == spool.Unban {
		w.res.Unbanned += ack.Accepted
		w.state.Unbanned += int64(ack.Accepted)
	} else {
		w.res.Delivered += ack.Accepted
		w.state.Delivered += int64(ack.Accepted)
	}
	w.res.Refused += refused
	w.state.Refused += int64(refused)
	w.state.LastSuccess = w.cfg.Now()
	if refused > 0 {
		why := refusal(ack.Stderr)
		if w.res.Refusal == "" {
			w.res.Refusal = why
		}
		w.cfg.Logf("peer %s: %d of the batch refused: %s", w.peer.Name, refused, why)
	}
	return ack, nil
}

// ban sends one batch on the stream, opening one if needed; on a receiver
// that does not know streams, or when a stream cannot be had, it sends it
// as a request of its own.
func (w *worker) ban(ctx context.Context, batch []byte) (sshpush.Ack, error) {
	for attempt := 0; !w.noStream && attempt < 2; attempt++ {
		if w.stream == nil {
			st, err := w.client.OpenStream(ctx)
			if err != nil {
				return sshpush.Ack{}, err
			}
			w.stream = st
		}
		ack, err := w.stream.Send(ctx, batch)
		if err == nil {
			return ack, nil
		}
		used := w.stream.Used()
		w.closeStream()
		switch {
		case sshpush.Unsupported(err):
			w.noStream = true
			w.cfg.Logf("peer %s: the receiver does not know streams: one session per batch", w.peer.Name)
		case used && sshpush.ClassOf(err) == sshpush.ClassUnreachable:
			// The receiver ended a stream it had served (idle or batch
			// limit): open another at once.
		default:
			return sshpush.Ack{}, err
		}
	}
	return w.client.Ban(ctx, batch)
}

func (w *worker) closeStream() {
	if w.stream != nil {
		w.stream.Close()
		w.stream = nil
	}
}

// fail records a failure. When the run's deadline cut short a retry, the
// failure that called for the retry is the one worth reporting.
//
// The state is saved at once, so that 'banpush status' shows each retry's
// failure as it happens, not when the run ends.
func (w *worker) fail(ctx context.Context, err error) {
	w.cfg.Logf("peer %s: %s", w.peer.Name, sshpush.Reason(err))
	if sshpush.Ended(ctx) && w.res.Err != nil && w.res.Class != sshpush.ClassOK {
		return
	}
	w.res.Class, w.res.Err = sshpush.ClassOf(err), err
	w.state.LastFailure = w.cfg.Now()
	w.state.LastFailureClass = string(w.res.Class)
	w.state.LastFailureMessage = sshpush.Reason(err)
	w.saveState()
}

func (w *worker) closeClient() {
	w.closeStream()
	if w.client != nil {
		w.client.Close()
		w.client = nil
	}
}

func (w *worker) saveState() {
	if w.noSave {
		return
	}
	w.unsavedSince = time.Time{}
	w.logIf(w.cfg.Spool.SaveState(w.peer.Name, w.state))
}

func (w *worker) logIf(err error) {
	if err != nil {
		w.cfg.Logf("peer %s: %v", w.peer.Name, err)
	}
}

// refusal is the receiver's first line about a record it refused for its
// policy (not for its rate limit: those stay queued), without the
// "banpush: " every line starts with.
func refusal(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimPrefix(l, "banpush: ")
		if l != "" && !strings.Contains(l, record.ErrRateLimit.Error()) {
			return l
		}
	}
	return "the receiver gave no reason"
}

// jitter spreads d over [d/2, 3d/2), so that many pushers retrying one peer
// (sshd's MaxStartups) do not come back in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

// sleep waits for d, and reports false if ctx ended or stop closed first.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

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
