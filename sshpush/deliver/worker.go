package deliver

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/spool"
)

// worker delivers one peer's queue, for the whole of a Run.
type worker struct {
	// unsavedSince is when the state first changed after the last
	// saveState; zero when it is saved.
	unsavedSince time.Time

	// The peer's cursor, kept here while the worker runs and written to
	// the spool saveAfter after it first moves (see saveCursor).
	pos        spool.Position
	posKnown   bool           // pos has been read from the spool
	diskPos    spool.Position // the cursor as last written
	movedSince time.Time      // when pos first moved past diskPos

	cfg      *Config
	shared   *run // what the workers of the Run share
	peer     Peer
	res      *Result
	client   *sshpush.Client
	stream   *sshpush.Stream // batches go out on it while it works
	noStream bool            // the receiver does not know streams
	state    spool.State
	noSave   bool // the state on disk could not be read: leave it alone
	cancels  *spool.Cancels
	sentAt   time.Time // when the last batch was answered (or failed)
	failAt   time.Time // when the last fail request ended

	failing  bool      // the last try failed: retries take the failing slots
	gaveUp   bool      // a foreground run met a failure no retry fixes
	tries    int       // failed tries in a row
	since    time.Time // when the failures in a row began
	loggedAt time.Time // when a failure in a row was last logged
	logged   string    // and what it said
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
// or saveAtMost after it changed, busy or not; and when the worker goes
// idle, ends or yields. A sender that is killed, or a machine that loses
// power, resends at most the deliveries of the last saveAtMost (of the
// last saveAfter when it was not busy), which at-least-once delivery
// allows and the receivers' logs and fail2ban take as repeats.
const (
	saveAfter  = time.Second
	quietFor   = 100 * time.Millisecond
	saveAtMost = 10 * time.Second
)

// relogAfter is how often a peer that keeps failing in the same way is
// logged again: a peer down for a day is retried every few seconds, and
// its log line would otherwise come with every try.
const relogAfter = 10 * time.Minute

// run is the worker's life: deliver (retrying failures), linger, go idle
// and wait for the journal to grow, until the Run ends.
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

	for {
		if ok, _ := w.deliver(ctx); !ok || !w.linger(ctx) {
			return
		}
		// Idle: nothing for this peer, or (in a foreground run) nothing a
		// retry could deliver. Put everything on disk, then wait. A
		// foreground run keeps its connections until it ends: what comes
		// in meanwhile goes out on them.
		if w.cfg.Linger > 0 {
			w.closeClient()
		}
		w.saveState()
		if err := w.saveCursor(true); err != nil {
			w.fail(ctx, err)
		}
		w.shared.idle()
		if !w.rest(ctx) {
			return
		}
	}
}

// deliver sends the peer's queue until it is empty, retrying failures
// with backoff. It reports false when the Run must end (ctx, Stop), and
// whether the cursor moved. In a foreground run, a failure no retry fixes
// ends the tries (gaveUp).
func (w *worker) deliver(ctx context.Context) (ok, moved bool) {
	backoff := w.cfg.MinBackoff
	for {
		start := time.Now()
		m, err := w.drain(ctx)
		moved = moved || m
		if err == nil {
			w.recovered()
			return !stopped(w.cfg.Stop), moved
		}
		w.fail(ctx, err)
		if sshpush.Ended(ctx) || stopped(w.cfg.Stop) {
			return false, moved
		}
		if !w.retries(err) {
			w.gaveUp = true
			return true, moved
		}
		w.closeClient()
		// From this try's start: a try that took its whole timeout (a
		// blackholed address) is followed by the next at once.
		wait := time.Until(start.Add(jitter(backoff)))
		if w.cfg.Retry != nil {
			w.cfg.Retry(w.peer.Name, err, max(wait, 0))
		}
		if wait > 0 && !sleep(ctx, w.cfg.Stop, wait) {
			return false, moved
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// retries reports whether a failure is tried again: every failure with
// Persist, otherwise only those a retry may fix.
func (w *worker) retries(err error) bool {
	if w.cfg.Persist {
		return true
	}
	var se *sshpush.Error
	return errors.As(err, &se) && se.Retryable()
}

// linger keeps the connection open for Linger after the queue empties, and
// sends whatever the journal brings meanwhile. It reports false when the
// Run must end.
func (w *worker) linger(ctx context.Context) bool {
	if w.cfg.Linger <= 0 || w.gaveUp {
		return true
	}
	idleSince := w.cfg.Now()
	if w.unsavedSince.IsZero() {
		w.unsavedSince = idleSince
	}
	for {
		wake := w.cfg.Wake.C() // before looking, so no append is missed
		left := w.cfg.Linger - w.cfg.Now().Sub(idleSince)
		if left <= 0 {
			return true
		}
		wait, err := w.saveDue()
		if err != nil {
			w.fail(ctx, err)
		}
		wait = max(min(left, w.cfg.Poll, wait), time.Millisecond)
		if !w.await(ctx, wake, nil, wait) {
			return false
		}
		// Anything new goes out, retries and all, and the linger starts
		// again once it is out.
		ok, moved := w.deliver(ctx)
		if !ok {
			return false
		}
		if moved {
			idleSince = w.cfg.Now()
		}
	}
}

// rest waits, idle, for the journal to grow; it reports true once it has
// work again, false when the Run ends. A worker that gave up waits only
// for the end.
func (w *worker) rest(ctx context.Context) bool {
	for {
		wake := w.cfg.Wake.C()
		if w.gaveUp {
			wake = nil
		}
		if !w.await(ctx, wake, w.shared.quit, w.cfg.Poll) {
			return false
		}
		if w.gaveUp {
			continue
		}
		has, err := w.hasWork()
		if err != nil {
			w.logIf(err)
			continue
		}
		if has && w.shared.wake() {
			return true
		}
		if has {
			return false // the Run ended meanwhile
		}
	}
}

// await waits for wake, for d, or for the end (ctx, Stop, quit); false
// means the end.
func (w *worker) await(ctx context.Context, wake, quit <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-w.cfg.Stop:
		return false
	case <-quit:
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// hasWork reports whether the journal holds anything past the peer's
// cursor; whether it is this peer's to send, drain decides.
func (w *worker) hasWork() (bool, error) {
	if !w.posKnown {
		return true, nil
	}
	b, err := w.cfg.Spool.Read(w.pos, 1, w.cfg.BatchBytes)
	if err != nil {
		return false, err
	}
	return b.Next != w.pos, nil
}

// saveDue writes the state and the cursor if they are due (see saveAfter)
// and returns how long until the next is.
func (w *worker) saveDue() (time.Duration, error) {
	wait := saveAtMost
	if !w.unsavedSince.IsZero() {
		if ok, again := w.due(w.unsavedSince); ok {
			w.saveState()
		} else {
			wait = min(wait, again)
		}
	}
	if w.pos != w.diskPos {
		ok, again := w.due(w.movedSince)
		if !ok {
			return min(wait, again), nil
		}
		if err := w.saveCursor(true); err != nil {
			return wait, err
		}
	}
	return wait, nil
}

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
	if quiet := time.Since(time.Unix(0, w.shared.anySent.Load())); quiet < quietFor {
		return false, quietFor - quiet
	}
	return true, 0
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

func (w *worker) saveState() {
	if w.noSave {
		return
	}
	w.unsavedSince = time.Time{}
	w.logIf(w.cfg.Spool.SaveState(w.peer.Name, w.state))
}

// fail records a failure. When the run's deadline cut short a retry, the
// failure that called for the retry is the one worth reporting.
//
// The state is saved at once, so that 'banpush status' shows each retry's
// failure as it happens, not when the run ends. The log gets the first
// failure of a row, each change of reason, and a reminder every
// relogAfter.
func (w *worker) fail(ctx context.Context, err error) {
	reason := sshpush.Reason(err)
	now := w.cfg.Now()
	if w.tries == 0 {
		w.since = now
	}
	w.tries++
	w.failing = true
	switch {
	case reason != w.logged:
		w.cfg.Logf("peer %s: %s", w.peer.Name, reason)
		w.logged, w.loggedAt = reason, now
	case now.Sub(w.loggedAt) >= relogAfter:
		w.cfg.Logf("peer %s: still failing, %d tries since %s: %s", w.peer.Name, w.tries, w.since.Format(time.RFC3339), reason)
		w.loggedAt = now
	}
	if sshpush.Ended(ctx) && w.res.Err != nil && w.res.Class != sshpush.ClassOK {
		return
	}
	w.res.Class, w.res.Err = sshpush.ClassOf(err), err
	w.state.LastFailure = now
	w.state.LastFailureClass = string(w.res.Class)
	w.state.LastFailureMessage = reason
	w.saveState()
}

// recovered records that the queue is empty, and says so in the log after
// failures.
func (w *worker) recovered() {
	if w.tries > 0 {
		w.cfg.Logf("peer %s: delivering again after %d failed tries in %s", w.peer.Name, w.tries,
			w.cfg.Now().Sub(w.since).Round(time.Millisecond))
	}
	w.tries, w.failing, w.logged = 0, false, ""
	w.res.Class, w.res.Err = sshpush.ClassOK, nil
}

func (w *worker) closeClient() {
	w.closeStream()
	if w.client != nil {
		w.client.Close()
		w.client = nil
	}
}

func (w *worker) closeStream() {
	if w.stream != nil {
		w.stream.Close()
		w.stream = nil
	}
}

func (w *worker) logIf(err error) {
	if err != nil {
		w.cfg.Logf("peer %s: %v", w.peer.Name, err)
	}
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

// jitter spreads d over [d/2, d], so that many pushers retrying one peer
// (sshd's MaxStartups) do not come back in step, and no wait is longer
// than d.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
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
