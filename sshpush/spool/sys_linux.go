package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data and size, not its other metadata.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
