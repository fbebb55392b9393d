package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks bounds the symbolic links OpenDir follows, as the kernel does.
const maxLinks = 40

// Dir is a directory opened by OpenDir: files in it are read and replaced
// through its descriptor, so that nothing can redirect them once it is
// open.
type Dir struct {
	f    *os.File
	path string
	st   unix.Stat_t
}

// OpenDir opens the directory at the absolute path, for root to change a
// file in a directory that another account controls (the receiving
// account's ~/.ssh). It walks the path one component at a time, and follows
// a symbolic link only where the directory that holds the link belongs to
// root and nobody else may write to it: elsewhere a link could send root's
// reads and writes anywhere (to /root/.ssh, say), and it is refused.
func OpenDir(path string) (*Dir, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	todo := splitPath(path)
	for links := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		var st, lst unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := unix.Fstatat(fd, name, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if lst.Mode&unix.S_IFMT == unix.S_IFLNK {
			if st.Uid != 0 || st.Mode&0o022 != 0 {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: %s is a symbolic link in a directory that another account can change; give the real path", path, name)
			}
			if links++; links > maxLinks {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: %w", path, unix.ELOOP)
			}
			target, err := readlinkat(fd, name)
			if err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if strings.HasPrefix(target, "/") {
				unix.Close(fd)
				if fd, err = unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		// O_NOFOLLOW: a link put here since the look above is refused.
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		fd = next
	}
	d := &Dir{f: os.NewFile(uintptr(fd), path), path: path}
	if err := unix.Fstat(fd, &d.st); err != nil {
		d.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func readlinkat(fd int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(fd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Close closes the directory.
func (d *Dir) Close() error { return d.f.Close() }

// ReadFile reads the file name in the directory, at most max bytes,
// without following a symbolic link. It refuses anything but a regular
// file with one link, owned by root or by the directory's owner: another
// name for someone else's file would have root copy it where the
// directory's owner can read it. It returns the file's owner too.
func (d *Dir) ReadFile(name string, max int64) (data []byte, uid, gid int, err error) {
	fd, err := unix.Openat(int(d.f.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, 0, 0, fmt.Errorf("%s/%s: %w", d.path, name, os.ErrNotExist)
	case errors.Is(err, unix.ELOOP):
		return nil, 0, 0, fmt.Errorf("%s/%s: is a symbolic link", d.path, name)
	case err != nil:
		return nil, 0, 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, 0, 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, 0, 0, fmt.Errorf("%s/%s: not a regular file", d.path, name)
	case st.Nlink != 1:
		return nil, 0, 0, fmt.Errorf("%s/%s: has %d names (hard links); refusing to copy it", d.path, name, st.Nlink)
	case st.Uid != 0 && st.Uid != d.st.Uid:
		return nil, 0, 0, fmt.Errorf("%s/%s: owned by neither root nor the directory's owner", d.path, name)
	case st.Size > max:
		return nil, 0, 0, fmt.Errorf("%s/%s: larger than %d bytes", d.path, name, max)
	}
	data, err = io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	if int64(len(data)) > max {
		return nil, 0, 0, fmt.Errorf("%s/%s: larger than %d bytes", d.path, name, max)
	}
	return data, int(st.Uid), int(st.Gid), nil
}

// WriteFile replaces the file name in the directory with data, mode perm,
// owned by uid:gid, atomically: a new file is written, synced, given its
// owner and mode through its descriptor, and renamed over the old one; then
// the directory is synced. No step goes through a path that someone else
// could change in between.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode, uid, gid int) error {
	return d.replace(name, data, perm, uid, gid, true)
}

// replace is WriteFile, with the file and directory syncs only if sync.
func (d *Dir) replace(name string, data []byte, perm os.FileMode, uid, gid int, sync bool) error {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := "." + name + ".tmp" + hex.EncodeToString(rnd[:])
	dirfd := int(d.f.Fd())
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = writeOwned(f, data, perm, uid, gid, sync)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	if !sync {
		return nil
	}
	return d.f.Sync()
}

func writeOwned(f *os.File, data []byte, perm os.FileMode, uid, gid int, sync bool) error {
	if uid != os.Geteuid() || gid != os.Getegid() {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return f.Sync()
}
