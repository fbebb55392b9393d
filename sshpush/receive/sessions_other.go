//go:build !linux

package receive

import "golang.org/x/sys/unix"

// setlk is the command that takes a session slot's lock: elsewhere a POSIX
// record lock, which is enough for receivers, one process each.
const setlk = unix.F_SETLK
