package sender

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/banpush/banpush/sshpush/spool"
	"golang.org/x/sys/unix"
)

// yieldName is a named pipe, in the spool directory, through which a
// foreground run asks the sender that holds the lock to let go. The sender
// keeps it open for reading while it holds the lock and stops at the first
// byte; with no sender reading, asking is a no-op. Nothing is polled and
// nothing is left behind: a byte nobody read vanishes with the last open
// descriptor.
const yieldName = "sender.yield"

// listenYield opens the yield pipe for the sender that holds the lock. The
// returned channel is closed when someone asks it to yield; stop closes the
// pipe.
func listenYield(dir string) (asked <-chan struct{}, stop func(), err error) {
	path := filepath.Join(dir, yieldName)
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, nil, fmt.Errorf("sender: %s: %w", yieldName, err)
	}
	// Read-write, so that the pipe always has a writer and a read waits for
	// a byte instead of returning end of file.
	f, err := openFIFO(path, unix.O_RDWR)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [64]byte
		if n, _ := f.Read(b[:]); n > 0 {
			close(ch)
		}
	}()
	return ch, func() { f.Close(); <-done }, nil
}

// Yield asks the background sender that holds the lock of s, if one is
// listening, to finish the batch in flight and let go; it exits then. It
// reports whether one listened. Foreground asks this itself; tools that
// only want a lingering sender gone (tests, the bench) call it directly.
func Yield(s *spool.Spool) (bool, error) { return askYield(s.Dir()) }

func askYield(dir string) (bool, error) {
	f, err := openFIFO(filepath.Join(dir, yieldName), unix.O_WRONLY)
	if errors.Is(err, unix.ENXIO) || errors.Is(err, os.ErrNotExist) {
		return false, nil // no reader, or no pipe yet: nobody to ask
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	return tell(f)
}

// tell writes one request to the yield pipe open in f.
func tell(f *os.File) (bool, error) {
	_, err := f.Write([]byte{'y'})
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN):
		return true, nil // EAGAIN: the pipe is full of requests already
	case errors.Is(err, unix.EPIPE):
		return false, nil // the sender let go since the pipe was opened
	}
	return false, fmt.Errorf("sender: %s: %w", yieldName, err)
}

// openFIFO opens path, without following a symlink and without blocking,
// and refuses anything but a named pipe of this user.
func openFIFO(path string, mode int) (*os.File, error) {
	fd, err := unix.Open(path, mode|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sender: %s: %w", yieldName, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || int(st.Uid) != os.Geteuid() {
		unix.Close(fd)
		return nil, fmt.Errorf("sender: %s: not a named pipe of this user; remove it", path)
	}
	// Non-blocking: the runtime's poller waits for the data, and Close
	// interrupts a Read.
	return os.NewFile(uintptr(fd), path), nil
}
