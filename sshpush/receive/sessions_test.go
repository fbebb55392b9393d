package receive

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestSessions: a peer gets at most its slots at once; another peer has
// its own; a released slot is free again.
func TestSessions(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slots of one process are distinct only with Linux's open file description locks")
	}
	log := filepath.Join(t.TempDir(), "received.log")
	var held []*Session
	for i := range 3 {
		s, err := AcquireSession(log, "web1", 3)
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		held = append(held, s)
	}
	if _, err := AcquireSession(log, "web1", 3); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("fourth session: %v, want ErrTooManySessions", err)
	}
	other, err := AcquireSession(log, "web2", 3)
	if err != nil {
		t.Fatalf("another peer: %v", err)
	}
	other.Release()
	held[1].Release()
	held[1].Release() // twice does nothing
	s, err := AcquireSession(log, "web1", 3)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	s.Release()
	for _, s := range held {
		s.Release()
	}
	fi, err := os.Stat(log + ".sessions")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if _, err := AcquireSession(log, "web1", 0); err == nil {
		t.Error("zero slots accepted")
	}
}
