package sender

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// On Linux the sender lock is an open file description lock (F_OFD_SETLK):
// like flock it belongs to the open file and dies with the process, and
// unlike flock it can be tested (F_OFD_GETLK) without being taken, so that
// `banpush status` never makes a push believe a sender is running.

func tryLock(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return false, err
}

func lockHeld(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
