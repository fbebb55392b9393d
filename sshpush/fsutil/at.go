package fsutil

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// What follows works inside a Dir by name, through its descriptor, and
// never follows a symbolic link at the last component: root uses it in
// directories that another account can change (the receiving account's
// home and ~/.ssh, the received log's directory).

// Path returns the path the directory was opened with, for messages.
func (d *Dir) Path() string { return d.path }

// Stat returns the directory's owner, group and mode as they are now.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.f.Fd()), &st); err != nil {
		return st, fmt.Errorf("%s: %w", d.path, err)
	}
	return st, nil
}

// Chmod sets the directory's mode (permission, sticky, setgid bits).
func (d *Dir) Chmod(mode uint32) error {
	if err := unix.Fchmod(int(d.f.Fd()), mode); err != nil {
		return fmt.Errorf("%s: chmod: %w", d.path, err)
	}
	return nil
}

// Chown sets the directory's owner and group.
func (d *Dir) Chown(uid, gid int) error {
	if err := unix.Fchown(int(d.f.Fd()), uid, gid); err != nil {
		return fmt.Errorf("%s: chown: %w", d.path, err)
	}
	return nil
}

// Sync flushes the directory: creations, renames and removals in it.
func (d *Dir) Sync() error { return d.f.Sync() }

// ErrLink is returned for a name that is a symbolic link where a file or a
// directory was expected.
var ErrLink = errors.New("is a symbolic link")

// Sub opens the directory name in d without following a symbolic link.
// A link gives ErrLink, a missing name os.ErrNotExist.
func (d *Dir) Sub(name string) (*Dir, error) {
	path := d.path + "/" + name
	fd, err := unix.Openat(int(d.f.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, nameError(d, name, err))
	}
	sub := &Dir{f: os.NewFile(uintptr(fd), path), path: path}
	if err := unix.Fstat(fd, &sub.st); err != nil {
		sub.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sub, nil
}

// MkdirSub opens the directory name in d, making it first with mode perm,
// owned by root, if it is missing; made reports whether it did. Whoever
// made the directory, the caller checks its owner before it trusts it.
func (d *Dir) MkdirSub(name string, perm uint32) (sub *Dir, made bool, err error) {
	for range 3 {
		sub, err = d.Sub(name)
		if !errors.Is(err, os.ErrNotExist) {
			return sub, made, err
		}
		err = unix.Mkdirat(int(d.f.Fd()), name, perm)
		switch {
		case err == nil:
			made = true
		case !errors.Is(err, unix.EEXIST): // else made by someone else since: open it
			return nil, false, fmt.Errorf("%s/%s: %w", d.path, name, err)
		}
	}
	return nil, false, fmt.Errorf("%s/%s: appears and disappears", d.path, name)
}

// Lstat describes the name in d itself, a symbolic link included.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return st, fmt.Errorf("%s/%s: %w", d.path, name, nameError(d, name, err))
	}
	return st, nil
}

// Open opens the regular file name in d without following a symbolic link,
// with flags (unix.O_RDONLY, say), and returns it with what fstat says of
// it. A link gives ErrLink, a missing name os.ErrNotExist, anything but a
// regular file an error. It never creates the file and never blocks on a
// FIFO.
func (d *Dir) Open(name string, flags int) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	path := d.path + "/" + name
	fd, err := unix.Openat(int(d.f.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, nameError(d, name, err))
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, st, fmt.Errorf("%s: not a regular file", path)
	}
	return os.NewFile(uintptr(fd), path), st, nil
}

// Create makes the file name in d, which must not exist (not even as a
// link), with mode perm, owned by uid:gid, and returns it open for
// writing. The owner and mode are set through the new file's descriptor.
func (d *Dir) Create(name string, perm uint32, uid, gid int) (*os.File, error) {
	path := d.path + "/" + name
	fd, err := unix.Openat(int(d.f.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := SetOwner(f, perm, uid, gid); err != nil {
		f.Close()
		unix.Unlinkat(int(d.f.Fd()), name, 0)
		return nil, err
	}
	return f, nil
}

// SetOwner gives the open file f the owner uid:gid and then the mode perm.
func SetOwner(f *os.File, perm uint32, uid, gid int) error {
	if err := unix.Fchown(int(f.Fd()), uid, gid); err != nil {
		return fmt.Errorf("%s: chown: %w", f.Name(), err)
	}
	if err := unix.Fchmod(int(f.Fd()), perm); err != nil {
		return fmt.Errorf("%s: chmod: %w", f.Name(), err)
	}
	return nil
}

// Rename renames old to new within d, replacing new. Neither name is
// followed if it is a link: the link itself moves, or is replaced.
func (d *Dir) Rename(old, new string) error {
	if err := unix.Renameat(int(d.f.Fd()), old, int(d.f.Fd()), new); err != nil {
		return fmt.Errorf("%s: renaming %s to %s: %w", d.path, old, new, err)
	}
	return nil
}

// Remove removes the name in d, which must not be a directory; a link is
// removed, never what it points to.
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(int(d.f.Fd()), name, 0); err != nil {
		return fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	return nil
}

// nameError turns what openat or fstatat said of name into ErrLink or
// os.ErrNotExist where it means that.
func nameError(d *Dir, name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return os.ErrNotExist
	case errors.Is(err, unix.ELOOP):
		return ErrLink
	case errors.Is(err, unix.ENOTDIR):
		// O_DIRECTORY on a link to a directory fails with ENOTDIR when
		// O_NOFOLLOW is set too: tell the link apart.
		var st unix.Stat_t
		if unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return ErrLink
		}
		return errors.New("not a directory")
	}
	return err
}

// Names lists the names in the directory, in no particular order.
func (d *Dir) Names() ([]string, error) {
	if _, err := d.f.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	return names, nil
}
