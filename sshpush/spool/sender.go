package spool

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TryLockSender takes the sender lock if it is free, without waiting. While
// a process holds it, it is the one sender of this spool. release gives the
// lock up; the lock also goes when the process dies, so a killed sender
// never blocks the next one.
//
// The lock is not inherited by child processes. A sender must close the
// exit race before it exits: note End, do its last reads, release, then
// compare End again and try to lock anew if the journal grew.
func (s *Spool) TryLockSender() (release func(), ok bool, err error) {
	f, err := os.OpenFile(s.path(senderLockName), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("spool: %w", err)
	}
	ok, err = tryLock(f)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("spool: sender lock: %w", err)
		}
		return nil, false, nil
	}
	return func() { f.Close() }, true, nil
}

// SenderRunning reports whether some process holds the sender lock. The
// answer may be stale as soon as it is returned; it is for display. On
// Linux it only tests the lock; elsewhere it takes and releases it, which
// can make a TryLockSender at that very moment fail.
func (s *Spool) SenderRunning() (bool, error) {
	f, err := os.OpenFile(s.path(senderLockName), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	held, err := lockHeld(f)
	if err != nil {
		return false, fmt.Errorf("spool: sender lock: %w", err)
	}
	return held, nil
}
