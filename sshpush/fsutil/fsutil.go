// Package fsutil holds the few file-system operations banpush relies on for
// durability: advisory locks with a deadline and atomic file replacement.
// It trusts its callers for paths; it never follows a symlink where it
// creates or locks files for others to read.
package fsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLockTimeout is returned by Lock when the deadline passes first.
var ErrLockTimeout = errors.New("lock held by another process")

// Lock takes an exclusive flock on f, waiting until ctx is done. It polls
// with a short, growing interval rather than blocking in the kernel, so a
// deadline always holds.
func Lock(ctx context.Context, f *os.File) error {
	wait := 200 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ErrLockTimeout
		case <-t.C:
		}
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}

// TryLock takes an exclusive flock on f if it is free, and reports whether
// it did.
func TryLock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return false, fmt.Errorf("flock %s: %w", f.Name(), err)
}

// Unlock releases a lock taken by Lock or TryLock.
func Unlock(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// WriteAtomic replaces path with data: it writes a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory
// (Dir.WriteFile). A reader sees the old content or the new, never a mix; a
// crash leaves one of them. perm applies to a new file; an existing file
// keeps its mode, owner and group. A symbolic link in path's place is
// refused. The directory itself is trusted: use OpenDir where another
// account controls it.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, true)
}

// ReplaceFile is WriteAtomic without the syncs, for a file whose loss a
// reader tolerates (a counter, a hint): readers still see the old content
// or the new, never a mix, but a crash of the machine may leave the old
// content, the new, or an empty or damaged file.
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, false)
}

func replaceFile(path string, data []byte, perm os.FileMode, sync bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		perm = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	d := &Dir{f: f, path: filepath.Clean(dir)}
	defer d.Close()
	return d.replace(base, data, perm, uid, gid, sync)
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
