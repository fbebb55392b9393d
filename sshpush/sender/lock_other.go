//go:build !linux

package spool

import (
	"os"

	"github.com/banpush/banpush/sshpush/fsutil"
)

func tryLock(f *os.File) (bool, error) { return fsutil.TryLock(f) }

func lockHeld(f *os.File) (bool, error) {
	ok, err := fsutil.TryLock(f)
	if err != nil || !ok {
		return !ok, err
	}
	return false, fsutil.Unlock(f)
}

func datasync(f *os.File) error { return f.Sync() }
