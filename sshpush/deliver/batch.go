package deliver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/wire"
)

// drain sends batches until the peer's queue is empty or one fails.
//
// A batch is all bans, all unbans or all failure reports, in journal
// order: a run of bans goes out as a ban request (on the stream), the
// unbans after it as an unban request, failure reports as a fail request,
// and so on, so that each peer sees them in the order they were
// queued. Entries for other peers and bans an unban cancelled are passed
// over. moved reports whether the cursor moved: records were acknowledged
// or passed over.
func (w *worker) drain(ctx context.Context) (moved bool, err error) {
	if err := w.loadCursor(); err != nil {
		return false, err
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
		upto, limited, err := w.deliverRead(ctx, b.Entries)
		if err != nil {
			return moved, err
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

// loadCursor reads the peer's cursor from the spool the first time.
func (w *worker) loadCursor() error {
	if w.posKnown {
		return nil
	}
	pos, err := w.cfg.Spool.Cursor(w.peer.Name)
	if err != nil {
		var ce *spool.CorruptFileError
		if !errors.As(err, &ce) {
			return err
		}
		w.cfg.Logf("peer %s: %v", w.peer.Name, err)
	}
	w.pos, w.diskPos, w.posKnown = pos, pos, true
	return nil
}

// deliverRead sends one batch made of entries (encode) and counts what it
// passed over. upto is how many entries the peer has acknowledged (all of
// them, unless it was rate-limited: then limited is set).
func (w *worker) deliverRead(ctx context.Context, entries []spool.Entry) (upto int, limited bool, err error) {
	enc := w.encode(entries)
	upto = enc.end // entries acknowledged by this round
	if len(enc.batch) > 0 && enc.kind == spool.Failure {
		// A fail request starts at least FailGap after the last one
		// ended: however many failures the fleet sees, a peer's sshd
		// gets at most one such session a second.
		if d := FailGap - time.Since(w.failAt); d > 0 && !sleep(ctx, w.cfg.Stop, d) {
			return 0, false, ctx.Err()
		}
		defer func() { w.failAt = time.Now() }()
	}
	if len(enc.batch) > 0 {
		ack, err := w.send(ctx, enc.kind, enc.batch)
		if err != nil && enc.kind == spool.Failure && sshpush.ClassOf(err) == sshpush.ClassTooOld {
			// A receiver that predates failure reports never counts
			// them: kept queued, they would be stale by its upgrade.
			n := len(enc.lineEntry)
			w.res.Dropped += n
			w.state.Dropped += int64(n)
			w.cfg.Logf("peer %s: dropped %d failure reports: %s", w.peer.Name, n, sshpush.Reason(err))
			ack, err = sshpush.Ack{}, nil
		}
		if err != nil {
			return 0, false, err
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
			e := entries[i]
			w.res.Dropped++
			w.state.Dropped++
			w.cfg.Logf("peer %s: dropped %s of %s: expired (queued %s)", w.peer.Name, e.Kind, e.Record.Addr, e.Queued.Format(time.RFC3339))
		}
	}
	return upto, limited, nil
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
			switch {
			case e.Kind == spool.Failure:
				recs[j] = record.AddFailures(recs[j], e.Record)
			case banEnd(e.Record) > banEnd(recs[j]):
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

// send delivers one batch of bans, unbans or failure reports, connecting
// first if needed.
func (w *worker) send(ctx context.Context, kind spool.Kind, batch []byte) (sshpush.Ack, error) {
	pool := w.shared.healthy
	if w.failing {
		pool = w.shared.failing
	}
	give, err := pool.take(ctx, w.cfg.Stop)
	if err != nil {
		return sshpush.Ack{}, &sshpush.Error{Peer: w.peer.Name, Class: sshpush.ClassTimeout, Err: err}
	}
	defer func() {
		give()
		w.sentAt = time.Now()
		w.shared.anySent.Store(w.sentAt.UnixNano())
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
	switch kind {
	case spool.Unban:
		ack, err = w.client.Unban(ctx, batch)
	case spool.Failure:
		ack, err = w.client.Fail(ctx, batch)
	default:
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
	switch kind {
	case spool.Unban:
		w.res.Unbanned += ack.Accepted
		w.state.Unbanned += int64(ack.Accepted)
	case spool.Failure:
		w.res.Reported += ack.Accepted
		w.state.Reported += int64(ack.Accepted)
	default:
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
