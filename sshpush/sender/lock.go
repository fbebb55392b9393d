package sender

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/banpush/banpush/sshpush/spool"
	"golang.org/x/sys/unix"
)

// lockName is the file, in the spool directory, whose lock the one sender
// of the spool holds.
const lockName = "sender.lock"

// Lock is the sender lock of a spool: while a process holds it, it is the
// one sender of that spool. The lock goes when the process dies, so a
// killed sender never blocks the next one, and it is not inherited by
// child processes.
type Lock struct{ f *os.File }

// TryLock takes the sender lock if it is free, without waiting.
func TryLock(s *spool.Spool) (*Lock, bool, error) {
	f, err := os.OpenFile(filepath.Join(s.Dir(), lockName), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("sender: %w", err)
	}
	ok, err := tryLock(f)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("sender: lock: %w", err)
		}
		return nil, false, nil
	}
	return &Lock{f: f}, true, nil
}

// Release gives the lock up. Later calls do nothing.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// Running reports whether some process holds the sender lock. The answer
// may be stale as soon as it is returned; it is for display. On Linux it
// only tests the lock; elsewhere it takes and releases it, which can make
// a TryLock at that very moment fail.
func Running(s *spool.Spool) (bool, error) {
	f, err := os.OpenFile(filepath.Join(s.Dir(), lockName), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sender: %w", err)
	}
	defer f.Close()
	held, err := lockHeld(f)
	if err != nil {
		return false, fmt.Errorf("sender: lock: %w", err)
	}
	return held, nil
}
