package fsutil

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fsAppendFL is FS_APPEND_FL of <linux/fs.h>: chattr's 'a'.
const fsAppendFL = 0x20

// AppendOnly reports whether f has the append-only attribute (chattr +a).
// A file system without attributes gives ErrNoAttributes.
func AppendOnly(f *os.File) (bool, error) {
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false, attrError(f, err)
	}
	return flags&fsAppendFL != 0, nil
}

// SetAppendOnly sets or clears f's append-only attribute. While it is set,
// the file can be opened for writing only with O_APPEND, and nobody, root
// included, can truncate, rename, remove or link it, or change its owner or
// mode; only root (CAP_LINUX_IMMUTABLE) can set or clear it. A file system
// without it gives ErrNoAttributes.
func SetAppendOnly(f *os.File, on bool) error {
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return attrError(f, err)
	}
	next := flags &^ fsAppendFL
	if on {
		next |= fsAppendFL
	}
	if next == flags {
		return nil
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(next)); err != nil {
		return attrError(f, err)
	}
	return nil
}

func attrError(f *os.File, err error) error {
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%s: %w", f.Name(), ErrNoAttributes)
	}
	return fmt.Errorf("%s: file attributes: %w", f.Name(), err)
}
