package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// Batch is the result of a Read.
type Batch struct {
	Entries []Entry
	// Skipped lists the corrupt lines passed over, for logging. Their
	// records are lost; every readable record around them is in Entries.
	Skipped []Skipped
	// Next is where the following Read should start: past every entry and
	// every skipped line. Advance a cursor to Next (or to an entry's Next)
	// only once the entries before it are acknowledged.
	Next Position
	// More is set when Read stopped at a limit, so that complete lines may
	// follow Next. When it is false Read reached the end of the journal.
	More bool
}

// skipLimit bounds the corrupt bytes one Read passes over, so that a
// garbage-filled journal is read in bounded steps (with More set).
const skipLimit = 1 << 20

// readBufSize is the reader's buffer: more than maxLine, small enough that
// a Read per peer costs little.
const readBufSize = 16 << 10

// Read returns up to maxRecords records starting at from, reading about
// maxBytes of journal: it stops before a line that would take it past
// maxBytes, except that it always returns at least one record if one is
// there. It crosses segments. Lines that fail their checksum or do not
// parse are skipped and reported in Batch.Skipped. A line still being
// written (no newline yet, at the end of the last segment) is neither
// returned nor skipped: the next Read will see it complete.
//
// Read may return no entries with More set when it skipped a long run of
// corrupt lines; keep reading from Next while More is set.
func (s *Spool) Read(from Position, maxRecords, maxBytes int) (Batch, error) {
	if maxRecords < 1 || maxBytes < 1 {
		return Batch{}, errors.New("spool: read limits must be positive")
	}
	if from.Off < 0 {
		return Batch{}, ErrPosition
	}
	segs, err := s.segments()
	if err != nil {
		return Batch{}, fmt.Errorf("spool: %w", err)
	}
	b := Batch{Next: from}
	if len(segs) == 0 {
		if from.Seg != 0 {
			return Batch{}, ErrPosition
		}
		return b, nil
	}
	i, pos, err := resolve(segs, from)
	if err != nil {
		return Batch{}, err
	}
	b.Next = pos
	rd := reader{b: &b, maxRecords: maxRecords, maxBytes: int64(maxBytes)}
	for ; i < len(segs); i++ {
		last := i == len(segs)-1
		stop, size, err := s.readSegment(&rd, segs[i], pos.Off, last)
		if err != nil {
			return Batch{}, err
		}
		if !last && (!stop || b.Next.Seg == segs[i] && b.Next.Off >= size) {
			// Past the end of a finished segment: start the next one, so that
			// a cursor set to Next releases this segment for compaction.
			pos = Position{Seg: segs[i+1]}
			b.Next = pos
		}
		if stop {
			break
		}
	}
	return b, nil
}

// resolve finds where from lies among the existing segments. A position in
// a compacted (or missing) segment moves to the start of the next one.
func resolve(segs []uint64, p Position) (int, Position, error) {
	if p.Seg < segs[0] {
		return 0, Position{Seg: segs[0]}, nil
	}
	i, found := slices.BinarySearch(segs, p.Seg)
	if i == len(segs) {
		return 0, Position{}, ErrPosition
	}
	if !found {
		return i, Position{Seg: segs[i]}, nil
	}
	return i, p, nil
}

type reader struct {
	b          *Batch
	maxRecords int
	maxBytes   int64
	used       int64 // bytes of the returned entries' lines
	skipped    int64 // bytes skipped
}

func (rd *reader) skip(p Position, lines int, n int64, reason string) {
	rd.skipped += n
	if k := len(rd.b.Skipped); k > 0 {
		prev := &rd.b.Skipped[k-1]
		if prev.Pos.Seg == p.Seg && prev.Pos.Off+prev.Bytes == p.Off && prev.Reason == reason {
			prev.Lines += lines
			prev.Bytes += n
			return
		}
	}
	rd.b.Skipped = append(rd.b.Skipped, Skipped{Pos: p, Lines: lines, Bytes: n, Reason: reason})
}

// readSegment reads segment seq from off into rd. It reports whether Read
// must stop (a limit, or the end of the last segment) and the segment's
// size.
func (s *Spool) readSegment(rd *reader, seq uint64, off int64, last bool) (stop bool, size int64, err error) {
	f, err := os.Open(s.segPath(seq))
	if errors.Is(err, os.ErrNotExist) {
		// Compacted since the listing: every live cursor had passed it.
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, 0, fmt.Errorf("spool: %w", err)
	}
	size = fi.Size()
	if off >= size {
		return last, size, nil
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, 0, fmt.Errorf("spool: %w", err)
	}
	stop, err = rd.scan(f, seq, off, size, last)
	return stop, size, err
}

// scan reads segment seq, of the given size, from off, where src is
// positioned. It reports whether Read must stop.
func (rd *reader) scan(src io.Reader, seq uint64, off, size int64, last bool) (stop bool, err error) {
	b := rd.b
	ls := newLineScanner(src, off, readBufSize)
	for {
		line, start, n, partial, err := ls.next()
		if errors.Is(err, io.EOF) {
			if partial {
				if last {
					// Still being written, or torn and not yet ended by the
					// next append: not ours to judge yet.
					b.Next = Position{seq, start}
					return true, nil
				}
				rd.skip(Position{seq, start}, 1, size-start, reasonTorn)
			}
			b.Next = Position{seq, ls.off}
			if partial {
				b.Next.Off = size
			}
			return last, nil
		}
		if err != nil {
			return false, fmt.Errorf("spool: segment %d: %w", seq, err)
		}
		if len(b.Entries) > 0 && rd.used+n > rd.maxBytes || rd.skipped >= skipLimit {
			b.Next = Position{seq, start}
			b.More = true
			return true, nil
		}
		b.Next = Position{seq, start + n}
		it, q, reason := decodeLine(line)
		if reason != "" {
			j, rit, qq := recoverSuffix(line)
			if j < 0 {
				rd.skip(Position{seq, start}, 1, n, reason)
				continue
			}
			good := int64(len(line) - j + 1) // the good line and its newline
			rd.skip(Position{seq, start}, 1, n-good, reason)
			it, q, n = rit, qq, good
		}
		rd.used += n
		b.Entries = append(b.Entries, Entry{Item: it, Queued: time.Unix(0, q), Next: b.Next})
		if len(b.Entries) >= rd.maxRecords {
			b.More = true
			return true, nil
		}
	}
}
