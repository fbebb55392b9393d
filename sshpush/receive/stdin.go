package receive

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// deadlineReader bounds how long reading stdin may take in all, so that a
// peer that never closes its end cannot hold a receiver (and its lock wait)
// forever.
func deadlineReader(r io.Reader, d time.Duration) io.Reader {
	f := pollable(r)
	if f == nil || f.SetReadDeadline(time.Now().Add(d)) != nil {
		return r
	}
	return f
}

// idleReader bounds how long each read of stdin may wait, and when the
// last may end: a stream may last long, but not in silence, and not
// forever.
func idleReader(r io.Reader, d time.Duration, until time.Time) io.Reader {
	f := pollable(r)
	if f == nil || f.SetReadDeadline(earliest(time.Now().Add(d), until)) != nil {
		return r
	}
	return &idleFile{f: f, d: d, until: until}
}

type idleFile struct {
	f     *os.File
	d     time.Duration
	until time.Time
}

func (i *idleFile) Read(p []byte) (int, error) {
	if err := i.f.SetReadDeadline(earliest(time.Now().Add(i.d), i.until)); err != nil {
		return 0, err
	}
	return i.f.Read(p)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// pollable returns stdin as a file that takes deadlines, or nil. Under sshd
// stdin is a blocking pipe or socket, which Go cannot put a deadline on: a
// duplicate of it in non-blocking mode can.
func pollable(r io.Reader) *os.File {
	f, ok := r.(*os.File)
	if !ok {
		return nil
	}
	if f.SetReadDeadline(time.Time{}) == nil {
		return f
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), f.Name())
}
