package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// Append queues recs for every peer, stamped with queued, and returns once
// they are on disk: it takes the append lock (waiting at most until ctx is
// done: give it a deadline), writes all the lines with one write, fsyncs
// and unlocks. Its cost does not depend on the number of peers or on the
// size of the journal.
//
// A record that would not read back unchanged (an invalid address, a bad
// jail name, out-of-range times) is refused before anything is written.
// If Append fails, none or some of the records may be queued; a retry may
// queue some twice, which readers tolerate (delivery is at-least-once).
func (s *Spool) Append(ctx context.Context, queued time.Time, recs ...record.Record) error {
	items := make([]Item, len(recs))
	for i, r := range recs {
		items[i] = Item{Record: r}
	}
	return s.AppendItems(ctx, queued, items...)
}

// AppendItems queues items as Append queues records: bans and unbans, for
// every peer or for one. An item that would not read back unchanged is
// refused before anything is written. Queuing an unban for every peer also
// cancels the bans of its address queued up to then (Cancels): they are not
// delivered afterwards, to any peer. (An unban for one peer cancels
// nothing: the cancels are for every peer.) The unban is on disk before the
// cancel is: a crash between the two, or a cancel that fails
// (ErrNotCancelled), delivers the bans and then the unban, which ends the
// same.
func (s *Spool) AppendItems(ctx context.Context, queued time.Time, items ...Item) error {
	if len(items) == 0 {
		return nil
	}
	nanos := queued.UnixNano()
	if nanos <= 0 {
		return errors.New("spool: queued time before 1970")
	}
	buf := make([]byte, 1, 1+len(items)*90)
	var unbans []netip.Addr
	for i, it := range items {
		if it.To != "" && !record.ValidName(it.To) {
			return fmt.Errorf("spool: item %d: %w", i+1, ErrPeerName)
		}
		start := len(buf)
		buf = appendLine(buf, nanos, it)
		if got, _, reason := decodeLine(buf[start : len(buf)-1]); reason != "" || got != it {
			if reason == "" {
				reason = reasonRecord
			}
			return fmt.Errorf("spool: item %d: %s", i+1, reason)
		}
		if it.Kind == Unban && it.To == "" {
			unbans = append(unbans, it.Record.Addr)
		}
	}
	if err := s.appendLines(ctx, buf); err != nil {
		return err
	}
	if len(unbans) == 0 {
		return nil
	}
	if err := s.cancel(ctx, unbans, nanos); err != nil {
		return fmt.Errorf("%w: %w", ErrNotCancelled, err)
	}
	return nil
}

// lockAppend takes the append lock, waiting until ctx is done; close the
// file it returns to release it.
func (s *Spool) lockAppend(ctx context.Context) (*os.File, error) {
	lf, err := os.OpenFile(s.appendLock, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := fsutil.Lock(ctx, lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("spool: append lock: %w", err)
	}
	return lf, nil
}

// ErrNotCancelled is returned by AppendItems when the items are queued but
// the bans their unbans cancel could not be marked so: those bans are
// delivered, and the unbans after them.
var ErrNotCancelled = errors.New("spool: queued, but the bans queued before the unbans are not cancelled")

// appendLines writes journal lines (buf, after one reserved byte) with one
// write and an fsync, under the append lock.
func (s *Spool) appendLines(ctx context.Context, buf []byte) error {
	lf, err := s.lockAppend(ctx)
	if err != nil {
		return err
	}
	defer lf.Close() // closing the last descriptor releases the flock

	seg, err := s.currentSegment(lf)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer seg.Close()
	fi, err := seg.Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	size := fi.Size()
	if size >= s.segmentSize {
		next, err := s.roll(lf, seg.Name())
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		seg.Close()
		seg, size = next, 0
	}
	if size > 0 {
		var last [1]byte
		if _, err := seg.ReadAt(last[:], size-1); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if last[0] != '\n' {
			// A crash tore the previous append: end that line so that it reads
			// as one corrupt line instead of swallowing the first record here.
			size = -1
		}
	}
	if size >= 0 {
		buf = buf[1:]
	} else {
		buf[0] = '\n'
	}
	n, err := seg.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("spool: append: %w", err)
	}
	if err := s.sync(seg); err != nil {
		return fmt.Errorf("spool: append: %w", err)
	}
	return nil
}

func (s *Spool) sync(f *os.File) error {
	if s.noSync {
		return nil
	}
	return datasync(f)
}

// The append lock file holds the current segment number, written in place
// as 16 digits and a newline. It is a hint: it is checked on every append
// and rebuilt from the directory if it looks wrong.
const hintLen = 17

func readHint(lf *os.File) (uint64, bool) {
	var b [hintLen]byte
	if n, err := lf.ReadAt(b[:], 0); n != hintLen || err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	if b[16] != '\n' {
		return 0, false
	}
	return parseSegName(string(b[:16]))
}

func (s *Spool) writeHint(lf *os.File, seq uint64) error {
	if _, err := lf.WriteAt([]byte(segName(seq)+"\n"), 0); err != nil {
		return err
	}
	return s.sync(lf)
}

// openSeg opens an existing segment for appending.
func (s *Spool) openSeg(seq uint64) (*os.File, error) {
	return os.OpenFile(s.segPath(seq), os.O_RDWR|os.O_APPEND|unix.O_NOFOLLOW, 0)
}

// currentSegment opens the segment appends go to. Fast path: the hint names
// an existing segment and no later one exists (two system calls). Otherwise
// it lists the journal. Called with the append lock held.
func (s *Spool) currentSegment(lf *os.File) (*os.File, error) {
	hint, ok := readHint(lf)
	if ok {
		f, err := s.openSeg(hint)
		if err == nil {
			if _, err := os.Lstat(s.segPath(hint + 1)); errors.Is(err, os.ErrNotExist) {
				return f, nil
			}
			f.Close()
		}
	}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		if err := s.writeHint(lf, last); err != nil {
			return nil, err
		}
		return s.openSeg(last)
	}
	// An empty journal: number the first segment past any the hint has seen,
	// so that an old cursor can never point into the new segment.
	next := uint64(1)
	if ok {
		next = hint + 1
	}
	return s.createSeg(lf, next)
}

// roll starts the segment after the one named cur. Called with the append
// lock held.
func (s *Spool) roll(lf *os.File, cur string) (*os.File, error) {
	seq, ok := parseSegName(filepath.Base(cur))
	if !ok {
		return nil, errors.New("bad segment name")
	}
	return s.createSeg(lf, seq+1)
}

// createSeg creates segment seq. The hint is updated first and the journal
// directory synced after, so that the hint is never behind a segment that
// survived a crash.
func (s *Spool) createSeg(lf *os.File, seq uint64) (*os.File, error) {
	if err := s.writeHint(lf, seq); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.segPath(seq), os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrExist) {
		return s.openSeg(seq)
	}
	if err != nil {
		return nil, err
	}
	if !s.noSync {
		if err := fsutil.SyncDir(s.path(journalDir)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// End returns the position just past the last byte of the journal, or the
// zero Position if the journal is empty.
func (s *Spool) End() (Position, error) {
	segs, err := s.segments()
	if err != nil {
		return Position{}, fmt.Errorf("spool: %w", err)
	}
	if len(segs) == 0 {
		return Position{}, nil
	}
	last := segs[len(segs)-1]
	fi, err := os.Stat(s.segPath(last))
	if err != nil {
		return Position{}, fmt.Errorf("spool: %w", err)
	}
	return Position{Seg: last, Off: fi.Size()}, nil
}
