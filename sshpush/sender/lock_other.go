//go:build !linux

package sender

import (
	"os"

	"github.com/banpush/banpush/sshpush/fsutil"
)

// Elsewhere than Linux the sender lock is a flock, which cannot be tested
// without being taken.

func tryLock(f *os.File) (bool, error) { return fsutil.TryLock(f) }

func lockHeld(f *os.File) (bool, error) {
	ok, err := fsutil.TryLock(f)
	if err != nil || !ok {
		return !ok, err
	}
	return false, fsutil.Unlock(f)
}
