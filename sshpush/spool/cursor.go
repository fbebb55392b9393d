package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/sys/unix"
)

// Cursor returns the position of peer's first unacknowledged record.
//
// A peer without a cursor starts at the start of the retained journal: a
// new peer is sent every record still queued (an initial sync; the sender
// drops the records that have expired).
//
// A cursor file that does not parse, or that points past the end of the
// journal (a truncated segment, a journal that was deleted), is reset and
// the reset is reported with a *CorruptFileError, returned together with
// the repaired position, which is the one to use. A reset moves the cursor
// back - to the start of its segment, or of the journal - so records may be
// sent again but are never skipped.
func (s *Spool) Cursor(peer string) (Position, error) {
	if err := checkPeer(peer); err != nil {
		return Position{}, err
	}
	segs, err := s.segments()
	if err != nil {
		return Position{}, fmt.Errorf("spool: %w", err)
	}
	pos, problem, err := s.cursor(peer, segs)
	if err != nil || problem == "" {
		return pos, err
	}
	if pos == (Position{}) {
		err = os.Remove(s.path(cursorDir, peer))
	} else {
		err = s.writeCursor(peer, pos)
	}
	if err != nil {
		return Position{}, fmt.Errorf("spool: %w", err)
	}
	return pos, &CorruptFileError{Path: cursorDir + "/" + peer, Reason: problem}
}

// cursor reads peer's cursor and checks it against the segments. If the
// file is bad it returns the position to reset to and the reason.
func (s *Spool) cursor(peer string, segs []uint64) (pos Position, problem string, err error) {
	f, err := os.OpenFile(s.path(cursorDir, peer), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, "", nil
	}
	if err != nil {
		return Position{}, "", fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return Position{}, "", fmt.Errorf("spool: %w", err)
	}
	pos, ok := parseCursor(b)
	if !ok {
		return Position{}, "unreadable cursor, reset to the start of the journal", nil
	}
	if pos == (Position{}) {
		return pos, "", nil
	}
	if len(segs) == 0 || pos.Seg > segs[len(segs)-1] {
		return Position{}, "cursor past the end of the journal, reset to its start", nil
	}
	fi, err := os.Stat(s.segPath(pos.Seg))
	if errors.Is(err, os.ErrNotExist) {
		return pos, "", nil // compacted: Read starts at the next segment
	}
	if err != nil {
		return Position{}, "", fmt.Errorf("spool: %w", err)
	}
	if pos.Off > fi.Size() {
		return Position{Seg: pos.Seg}, "cursor past the end of its segment, reset to the segment's start", nil
	}
	return pos, "", nil
}

// parseCursor parses "SEG OFFSET\n" with canonical decimal numbers.
func parseCursor(b []byte) (Position, bool) {
	line, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return Position{}, false
	}
	segStr, offStr, ok := strings.Cut(line, " ")
	if !ok || !canonical(segStr) || !canonical(offStr) {
		return Position{}, false
	}
	seg, err1 := strconv.ParseUint(segStr, 10, 64)
	off, err2 := strconv.ParseInt(offStr, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, false
	}
	return Position{Seg: seg, Off: off}, true
}

func canonical(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (s *Spool) writeCursor(peer string, pos Position) error {
	b := strconv.AppendUint(nil, pos.Seg, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, pos.Off, 10)
	b = append(b, '\n')
	return fsutil.WriteAtomic(s.path(cursorDir, peer), b, 0o600)
}

// Advance moves peer's cursor forward to pos, durably (the cursor file is
// replaced atomically and the directory synced), once the records before pos
// are acknowledged. A pos at or behind the cursor changes nothing: a cursor
// never moves back. pos must come from Read (Batch.Next or Entry.Next).
//
// Call it with the sender lock (package sender) held: two concurrent
// Advances for one peer could otherwise interleave.
func (s *Spool) Advance(peer string, pos Position) error {
	if err := checkPeer(peer); err != nil {
		return err
	}
	if pos.Off < 0 {
		return ErrPosition
	}
	segs, err := s.segments()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(segs) == 0 || pos.Seg > segs[len(segs)-1] {
		if pos == (Position{}) {
			return nil
		}
		return ErrPosition
	}
	if fi, err := os.Stat(s.segPath(pos.Seg)); err == nil && pos.Off > fi.Size() {
		return ErrPosition
	}
	cur, _, err := s.cursor(peer, segs)
	if err != nil {
		return err
	}
	if !cur.Less(pos) {
		return nil
	}
	// The sender may have read records that a push wrote but has not yet
	// synced: make them durable before a durable cursor points past them,
	// or a power loss could keep the cursor and lose the records.
	if err := syncFile(s.segPath(pos.Seg)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.writeCursor(peer, pos); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Pending returns the number of items queued for peer and when the
// oldest of them was queued (the zero time if none), leaving out the bans
// an unban cancelled: no sender delivers them. It reads the journal from
// peer's cursor to the end and parses every record: its cost grows with
// what is queued (on the order of a microsecond per record), which suits
// `banpush status` but not a hot path. It does not repair a bad cursor
// (Cursor does).
func (s *Spool) Pending(peer string) (n int, oldest time.Time, err error) {
	if err := checkPeer(peer); err != nil {
		return 0, time.Time{}, err
	}
	segs, err := s.segments()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("spool: %w", err)
	}
	pos, _, err := s.cursor(peer, segs)
	if err != nil {
		return 0, time.Time{}, err
	}
	cancels, err := s.LoadCancels(nil)
	if err != nil {
		return 0, time.Time{}, err
	}
	for {
		b, err := s.Read(pos, 4096, 1<<20)
		if err != nil {
			return 0, time.Time{}, err
		}
		for _, e := range b.Entries {
			if !e.For(peer) || cancels.Cancelled(e) {
				continue
			}
			if oldest.IsZero() || e.Queued.Before(oldest) {
				oldest = e.Queued
			}
			n++
		}
		if !b.More {
			return n, oldest, nil
		}
		pos = b.Next
	}
}

// HasPending reports whether any of peers has a complete journal line after
// its cursor (a record, or a corrupt line that a Read would skip). It reads
// one line per peer. A line still being written (no newline yet) is not
// pending: the append that writes it is not over.
func (s *Spool) HasPending(peers []string) (bool, error) {
	segs, err := s.segments()
	if err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	for _, peer := range peers {
		if err := checkPeer(peer); err != nil {
			return false, err
		}
		pos, _, err := s.cursor(peer, segs)
		if err != nil {
			return false, err
		}
		b, err := s.Read(pos, 1, 1)
		if errors.Is(err, ErrPosition) {
			return true, nil // the journal changed under us; look again
		}
		if err != nil {
			return false, err
		}
		if len(b.Entries) > 0 || len(b.Skipped) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// RemovePeer deletes peer's cursor and delivery state, and returns how many
// records were still queued for it, so that the caller can say what is
// dropped. The journal itself shrinks at the next Compact.
func (s *Spool) RemovePeer(peer string) (int, error) {
	n, _, err := s.Pending(peer)
	if err != nil {
		return 0, err
	}
	for _, p := range []string{s.path(cursorDir, peer), s.path(peerDir, peer+".json")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("spool: %w", err)
		}
	}
	return n, nil
}

// Compact deletes the journal segments that every peer in live has read
// past, and the cursors and state of every peer not in live. It never
// deletes the last segment. A live peer without a cursor holds back the
// whole journal (it starts at the start), as does one that never advances:
// the sender should advance past expired records even for a peer it cannot
// reach.
//
// live must be the complete list of configured peers: a peer left out
// loses its cursor, and records are compacted away under it. Call it with
// the sender lock (package sender) held.
func (s *Spool) Compact(live []string) error {
	keep := make(map[string]bool, len(live))
	for _, p := range live {
		if err := checkPeer(p); err != nil {
			return err
		}
		keep[p] = true
	}
	segs, err := s.segments()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(segs) > 1 {
		limit := segs[len(segs)-1] // never the last segment
		for _, p := range live {
			pos, _, err := s.cursor(p, segs)
			if err != nil {
				return err
			}
			limit = min(limit, pos.Seg)
		}
		for _, seq := range segs {
			if seq >= limit {
				break
			}
			if err := os.Remove(s.segPath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	for _, d := range []struct{ dir, suffix string }{{cursorDir, ""}, {peerDir, ".json"}} {
		ents, err := os.ReadDir(s.path(d.dir))
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), d.suffix)
			if ok && keep[name] || !e.Type().IsRegular() {
				continue
			}
			if err := os.Remove(s.path(d.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	return nil
}

// syncFile flushes a file's data to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
