package receive

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// DefaultMaxSessions bounds the receivers one pushing peer may run at once
// for one log: a sender uses one at a time, and a second while a killed
// sender's last receiver finishes; more are a peer holding sessions open.
const DefaultMaxSessions = 4

// ErrTooManySessions means the peer already runs its share of receivers:
// nothing was read, and the same request may succeed later.
var ErrTooManySessions = errors.New("too many sessions from this peer at once")

// Session is one of a pushing peer's receiver slots, held while the
// receiver runs (AcquireSession).
type Session struct{ f *os.File }

// AcquireSession takes one of max slots of the peer for the log at
// logPath, or fails with ErrTooManySessions when all are taken (a
// *WriteError when the sessions file cannot be used, a *TempError when its
// slots cannot be locked). The slots are
// byte-range locks in LOG.sessions (0600, the receiving account's), at an
// offset derived from the peer's identity (PeerID), so they go when a
// receiver dies, and nobody but the receiving account can hold them.
func AcquireSession(logPath, peer string, max int) (*Session, error) {
	if max < 1 || max > 64 {
		return nil, errors.New("receive: sessions per peer must be from 1 to 64")
	}
	fd, err := unix.Open(logPath+".sessions", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, &WriteError{fmt.Errorf("opening the sessions file beside the log: %w", err)}
	}
	f := os.NewFile(uintptr(fd), logPath+".sessions")
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &WriteError{errors.New("opening the sessions file: not a regular file")}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, &WriteError{fmt.Errorf("sessions file readable by others: %w", err)}
		}
	}
	h := fnv.New64a()
	h.Write([]byte(record.PeerID(peer)))
	base := int64(h.Sum64()%(1<<40)) * 64
	for k := range int64(max) {
		ok, err := lockRange(f, base+k)
		if err != nil {
			f.Close()
			return nil, &TempError{fmt.Errorf("locking a session slot: %w", err)}
		}
		if ok {
			return &Session{f: f}, nil
		}
	}
	f.Close()
	return nil, ErrTooManySessions
}

// Release gives the slot back.
func (s *Session) Release() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// lockRange takes a write lock on the one byte at off, if it is free.
func lockRange(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: off, Len: 1}
	err := unix.FcntlFlock(f.Fd(), setlk, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return err == nil, err
}
