package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// logWatch tells which peers' log directories changed, with inotify, so
// that waiting for a ban reads a log only when it grew and sees the line
// within microseconds of its write. Polling every log every few
// milliseconds instead cost the bench a CPU share that grew with the
// peers, taken from the peers it measures, and added up to a poll interval
// to every time.
type logWatch struct {
	fd   int
	byWD map[int32]*banLog
	buf  []byte
}

func newLogWatch() (*logWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &logWatch{fd: fd, byWD: map[int32]*banLog{}, buf: make([]byte, 64<<10)}, nil
}

func (w *logWatch) close() { unix.Close(w.fd) }

// add watches the directory of l's log (the log is created by its first
// write).
func (w *logWatch) add(l *banLog) error {
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Dir(l.path), unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO)
	if err != nil {
		return fmt.Errorf("inotify: watching %s: %w", filepath.Dir(l.path), err)
	}
	w.byWD[int32(wd)] = l
	return nil
}

// wait returns the logs whose directories changed, waiting at most d for
// the first change. all is set when every log must be read again: the
// wait timed out, or the kernel's event queue overflowed.
func (w *logWatch) wait(d time.Duration) (changed map[*banLog]bool, all bool, err error) {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d.Milliseconds()))
	if errors.Is(err, unix.EINTR) || err == nil && n == 0 {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inotify: %w", err)
	}
	changed = map[*banLog]bool{}
	for {
		n, err := unix.Read(w.fd, w.buf)
		if errors.Is(err, unix.EAGAIN) {
			return changed, all, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("inotify: %w", err)
		}
		for b := w.buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int32(binary.NativeEndian.Uint32(b[0:4]))
			mask := binary.NativeEndian.Uint32(b[4:8])
			size := int(binary.NativeEndian.Uint32(b[12:16]))
			if mask&unix.IN_Q_OVERFLOW != 0 {
				all = true
			}
			if l := w.byWD[wd]; l != nil {
				changed[l] = true
			}
			b = b[min(len(b), unix.SizeofInotifyEvent+size):]
		}
	}
}
