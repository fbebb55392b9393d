package sender

import (
	"math"

	"golang.org/x/sys/unix"
)

// closeInherited marks every descriptor above stderr close-on-exec. Go opens
// its own files that way, but a parent may have leaked one to us (a pipe
// from a wrapper script, say); a sender must not hold it open, or whoever
// waits for that pipe's end would wait for the sender too.
func closeInherited() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	closeInheritedFrom("/proc/self/fd") // kernels before 5.11
}
