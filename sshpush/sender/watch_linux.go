package sender

import (
	"fmt"
	"os"

	"github.com/banpush/banpush/sshpush/deliver"
	"golang.org/x/sys/unix"
)

// watch signals n whenever a file in dir is written or created, using
// inotify, until stop is called. The sender watches the journal with it, so
// that a lingering connection carries a new ban within milliseconds of its
// push.
func watch(dir string, n *deliver.Notifier) (stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("sender: inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sender: watching %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close interrupts Read
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			n.Notify()
		}
	}()
	return func() { f.Close(); <-done }, nil
}
