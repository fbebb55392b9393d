package logtail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned by LockCursor when another process holds the
// cursor's lock past the timeout.
var ErrBusy = errors.New("logtail: another process follows the log with the same cursor")

// ErrUnsafeState is returned by LockCursor when the cursor's directory is
// not the running account's own, or others may write to it: a cursor
// there could be replaced by another account, or turned into a link for
// root to write through (the receiving account's home is such a
// directory).
var ErrUnsafeState = errors.New("logtail: the cursor's directory belongs to another account or others may write to it")

// LockCursor takes the lock beside the cursor file at path (PATH.lock),
// waiting up to timeout, so that two followers of one cursor (a timer's
// run and one by hand, or two services) never read the same lines at once.
// It first checks that the cursor's directory is the running account's own
// and nobody else may write to it (ErrUnsafeState). Closing the file
// returned releases the lock.
func LockCursor(ctx context.Context, path string, timeout time.Duration) (*os.File, error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("logtail: state directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnsafeState, dir)
	}
	fd, err := unix.Open(path+".lock", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logtail: lock %s.lock: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path+".lock")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := fsutil.Lock(ctx, f); err != nil {
		f.Close()
		if errors.Is(err, fsutil.ErrLockTimeout) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("logtail: %w", err)
	}
	return f, nil
}
