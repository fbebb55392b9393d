// Package logtail reads the lines appended to a log since a cursor, across
// a rotation: from wherever the cursor's position still is (the log, or
// LOG.1 beside it once logrotate has renamed or copied it), then through
// the live log. The cursor, saved in a file of the caller's between runs,
// names a file by device and inode and fingerprints the bytes before its
// position, so that a copy, a truncation or a new file on a reused inode
// is told from the file it was in. A follower without a cursor starts
// either at the start of LOG.1 and the log (Open with none) or at the end
// of the log (End). banpush's two followers share it: apply-unbans (the
// received log) and report-failures (fail2ban's log).
//
// What it trusts: the paths and bounds its caller gives. What it does not
// trust: anything it reads. The log and LOG.1 may lie in a directory
// another account writes, and may say anything: they are opened without
// following a symbolic link, only as regular files with a single name,
// lines are returned only up to the caller's bound (longer ones are passed
// over without being held whole, a sparse file's holes without being
// read), and a cursor file that does not parse, or is not a regular file,
// is refused. Lines are bytes: parsing them is the caller's.
package logtail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Start says where a Reader began, and why there.
type Start string

const (
	// StartContinued: the log still holds the cursor's position.
	StartContinued Start = "continued"
	// StartRotated: the log was rotated; the rest of LOG.1 from the
	// cursor is read first, then the new log from its start.
	StartRotated Start = "rotated"
	// StartFirst: there was no cursor; LOG.1 and the log are read from
	// their start.
	StartFirst Start = "first"
	// StartLost: neither the log nor LOG.1 holds the cursor's position
	// (the log was truncated or rewritten, or rotated twice since): both
	// are read from their start.
	StartLost Start = "lost"
)

// ErrNoLog is returned by Open when neither the log nor LOG.1 exists.
var ErrNoLog = errors.New("logtail: neither the log nor LOG.1 exists")

// ErrSkipped is returned by Reader.Next for a line passed over: longer
// than the Reader's bound, or cut short (no newline at the end of LOG.1,
// which nothing writes any more). Its bytes are not returned.
var ErrSkipped = errors.New("logtail: line too long or cut short, passed over")

// segment is one file to read, from an offset.
type segment struct {
	f        *os.File
	dev, ino uint64
	size     int64 // when opened
	from     int64
	last     bool // the live log: a last line without its newline is left for later
}

// Reader reads the lines of a log after a cursor, across a rotation: from the cursor's offset in whichever of LOG and LOG.1 still
// continues it, then through the live log.
type Reader struct {
	maxLine int
	segs    []*segment
	i       int
	br      *bufio.Reader
	pos     Cursor // after the last line returned
	tail    []byte // the up to tailLen bytes before pos.Offset
	skip    bool   // pos is inside a long line, to pass over first (Cursor.Skip)
	Start   Start
}

// Open plans a read of the log at path (an absolute path) and LOG.1 beside
// it, after cur (nil: no cursor yet), returning lines of at most maxLine
// bytes (without the newline); a longer one is passed over (ErrSkipped).
// maxLine is the caller's bound for its log's lines: each Reader buffers
// that much. Both files are opened without following a symbolic link;
// anything but a regular file is refused for the log, and passed over for
// LOG.1. Close the Reader when done.
func Open(path string, cur *Cursor, maxLine int) (*Reader, error) {
	live, old, err := openPair(path, maxLine)
	if err != nil {
		return nil, err
	}
	r := &Reader{maxLine: maxLine}
	switch {
	case cur == nil:
		r.Start = StartFirst
		r.segs = plan(old, 0, live)
	case live != nil && live.dev == cur.Dev && live.ino == cur.Ino && continues(live.f, live.size, cur):
		r.Start = StartContinued
		live.from = cur.Offset
		r.segs = plan(nil, 0, live)
		r.skip = cur.Skip
	case old != nil && continues(old.f, old.size, cur):
		// Renamed (the same inode), or copied (copytruncate: the copy
		// holds the same bytes before the offset).
		r.Start = StartRotated
		r.segs = plan(old, cur.Offset, live)
		r.skip = cur.Skip
	default:
		r.Start = StartLost
		r.segs = plan(old, 0, live)
	}
	if old != nil && (len(r.segs) == 0 || r.segs[0] != old) {
		old.f.Close()
	}
	if err := r.begin(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// End returns a cursor at the end of the log at path (or of LOG.1, while
// the log is missing), after its last whole line: a Reader opened at it
// reads only what is appended to the log afterwards. A last line without
// its newline, being written, is read once whole; if it is longer than
// maxLine already, the cursor is past it, to pass over the rest of it
// (Cursor.Skip). Both files are opened as Open opens them.
func End(path string, maxLine int) (Cursor, error) {
	live, old, err := openPair(path, maxLine)
	if err != nil {
		return Cursor{}, err
	}
	s := live
	if s == nil {
		s = old
	} else if old != nil {
		old.f.Close()
	}
	defer s.f.Close()
	// The last maxLine+1 bytes hold the last newline, unless the last
	// line is too long.
	n := min(s.size, int64(maxLine)+1)
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, s.size-n); err != nil {
		return Cursor{}, fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	off, skip := s.size, false
	switch i := bytes.LastIndexByte(buf, '\n'); {
	case i == len(buf)-1:
	case i >= 0:
		off = s.size - n + int64(i) + 1
	case s.size > int64(maxLine):
		skip = true
	default:
		off = 0 // one short unfinished line
	}
	tail := make([]byte, min(off, tailLen))
	if _, err := s.f.ReadAt(tail, off-int64(len(tail))); err != nil {
		return Cursor{}, fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	return Cursor{Dev: s.dev, Ino: s.ino, Offset: off, Tail: fingerprint(tail), Skip: skip}, nil
}

// openPair opens the log at path, an absolute path, and LOG.1 beside it;
// either may be missing (nil), not both (ErrNoLog). LOG.1 is passed over
// if it is not a regular file.
func openPair(path string, maxLine int) (live, old *segment, err error) {
	if !filepath.IsAbs(path) {
		return nil, nil, fmt.Errorf("logtail: %s: not an absolute path", path)
	}
	if maxLine <= 0 {
		return nil, nil, fmt.Errorf("logtail: line bound %d: not positive", maxLine)
	}
	dir, base := filepath.Split(path)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("logtail: %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	live, err = openAt(dfd, dir, base)
	if err != nil {
		return nil, nil, err
	}
	old, err = openAt(dfd, dir, base+".1")
	if err != nil {
		old = nil // not a regular file: no log logrotate made
	}
	if live == nil && old == nil {
		return nil, nil, fmt.Errorf("%w at %s", ErrNoLog, path)
	}
	if live != nil {
		live.last = true
	}
	return live, old, nil
}

// plan lists the segments to read: old from an offset, if given, then
// live from where it starts.
func plan(old *segment, from int64, live *segment) []*segment {
	var segs []*segment
	if old != nil {
		old.from = from
		segs = append(segs, old)
	}
	if live != nil {
		segs = append(segs, live)
	}
	return segs
}

// openAt opens name in the directory dfd, refusing a symbolic link and
// anything but a regular file. A missing file is a zero segment.
func openAt(dfd int, dir, name string) (*segment, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("logtail: %s%s: is a symbolic link", dir, name)
	case err != nil:
		return nil, fmt.Errorf("logtail: %s%s: %w", dir, name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("logtail: %s%s: %w", dir, name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("logtail: %s%s: not a regular file", dir, name)
	}
	// apply-unbans (root) reads the log in a directory the receiving
	// account writes: a hard link the account made to a file of root's
	// would have root parse that file. No log logrotate keeps has two
	// names.
	if st.Nlink != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("logtail: %s%s: has %d names (hard links); refusing to read it", dir, name, st.Nlink)
	}
	return &segment{f: os.NewFile(uintptr(fd), dir+name), dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size}, nil
}

// begin starts reading segment r.i at its offset.
func (r *Reader) begin() error {
	s := r.segs[r.i]
	if _, err := s.f.Seek(s.from, io.SeekStart); err != nil {
		return fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	r.br = bufio.NewReaderSize(s.f, r.maxLine+1)
	r.pos = Cursor{Dev: s.dev, Ino: s.ino, Offset: s.from}
	n := min(s.from, tailLen)
	r.tail = make([]byte, n, tailLen)
	if _, err := s.f.ReadAt(r.tail, s.from-n); err != nil {
		return fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	return nil
}

// Next returns the next whole line, without its newline, and the cursor
// just after it; io.EOF at the end. A line longer than the Reader's bound
// is returned as nil with ErrSkipped once its newline is found (its bytes are
// passed over, never buffered whole, and holes of a sparse file are not
// read). A last line without its newline is not returned in the live log
// (it is being written, or was cut: it is read again next time, once
// whole), unless it is longer than the bound: then the cursor at io.EOF
// is past what was read of it, with Skip set, and the next read goes on
// from there. In LOG.1, which nothing writes any more, such a line is
// passed over as ErrSkipped. The line is valid until the next call.
//
// A Reader reads what the files hold when it reaches them: to read what
// is appended after Next returned io.EOF, Open a new one at the cursor.
func (r *Reader) Next() ([]byte, Cursor, error) {
	for {
		line, err := r.line()
		if err != io.EOF {
			return line, r.Cursor(), err
		}
		if r.i+1 >= len(r.segs) {
			return nil, r.Cursor(), io.EOF
		}
		r.i++
		if err := r.begin(); err != nil {
			return nil, r.Cursor(), err
		}
	}
}

// line reads one line of the current segment.
func (r *Reader) line() ([]byte, error) {
	s := r.segs[r.i]
	if r.skip {
		return r.passOver()
	}
	b, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		r.advance(b)
		return b[:len(b)-1], nil
	case errors.Is(err, bufio.ErrBufferFull):
		// Too long: pass over the rest of the line.
		r.advance(b)
		r.skip = true
		return r.passOver()
	case err == io.EOF:
		if len(b) == 0 {
			return nil, io.EOF
		}
		if s.last {
			return nil, io.EOF
		}
		r.advance(b)
		return nil, ErrSkipped
	default:
		return nil, fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
}

// passOver passes over the rest of a long line, from the position to its
// newline (ErrSkipped), or to the end of the segment: in the live log the
// line is unfinished, and the position stays inside it, skip set, for the
// next read to go on from (io.EOF); in LOG.1 it ends there (ErrSkipped).
// It reads the file directly in large blocks, and does not read its holes
// (SEEK_DATA), which hold no newline.
func (r *Reader) passOver() ([]byte, error) {
	s := r.segs[r.i]
	off := r.pos.Offset
	buf := make([]byte, 64<<10)
	found := false
	for !found {
		d, err := s.f.Seek(off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			// No data from off on: a hole up to the end, or the end.
			fi, err := s.f.Stat()
			if err != nil {
				return nil, fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
			}
			off = max(off, fi.Size())
		case err == nil && d > off:
			off = d
		}
		n, err := s.f.ReadAt(buf, off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			n, found = i+1, true
		}
		off += int64(n)
		if !found && err == io.EOF || n == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
		}
	}
	if err := r.moveTo(off); err != nil {
		return nil, err
	}
	if !found && s.last {
		return nil, io.EOF
	}
	r.skip = false
	return nil, ErrSkipped
}

// moveTo puts the position at off in the current segment, with the
// fingerprint's bytes before it, and reading on from there.
func (r *Reader) moveTo(off int64) error {
	s := r.segs[r.i]
	tail := make([]byte, min(off, tailLen), tailLen)
	if _, err := s.f.ReadAt(tail, off-int64(len(tail))); err != nil {
		return fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	r.tail = tail
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("logtail: %s: %w", s.f.Name(), err)
	}
	r.pos.Offset = off
	r.br.Reset(s.f)
	return nil
}

// advance moves the position over b, just read.
func (r *Reader) advance(b []byte) {
	r.pos.Offset += int64(len(b))
	if len(b) >= tailLen {
		r.tail = append(r.tail[:0], b[len(b)-tailLen:]...)
		return
	}
	if over := len(r.tail) + len(b) - tailLen; over > 0 {
		r.tail = append(r.tail[:0], r.tail[over:]...)
	}
	r.tail = append(r.tail, b...)
}

// Cursor is the position after the last line Next returned (or passed
// over), or inside a long line it is passing over (Skip).
func (r *Reader) Cursor() Cursor {
	c := r.pos
	c.Tail = fingerprint(r.tail)
	c.Skip = r.skip
	return c
}

// Close closes the files.
func (r *Reader) Close() error {
	for _, s := range r.segs {
		s.f.Close()
	}
	return nil
}
