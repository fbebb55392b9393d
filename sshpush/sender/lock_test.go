package sender

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/banpush/banpush/sshpush/spool"
)

func newSpool(t *testing.T) *spool.Spool {
	t.Helper()
	s, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSenderLock(t *testing.T) {
	s := newSpool(t)
	if running, err := Running(s); err != nil || running {
		t.Fatalf("before any sender: got %v, %v", running, err)
	}
	l, ok, err := TryLock(s)
	if err != nil || !ok {
		t.Fatalf("first TryLock: got %v, %v", ok, err)
	}
	if _, ok, err := TryLock(s); err != nil || ok {
		t.Errorf("second TryLock: got %v, %v, want false", ok, err)
	}
	if running, err := Running(s); err != nil || !running {
		t.Errorf("with a sender: got %v, %v, want true", running, err)
	}
	l.Release()
	l.Release() // a second release does nothing
	if running, err := Running(s); err != nil || running {
		t.Errorf("after release: got %v, %v, want false", running, err)
	}
	l, ok, err = TryLock(s)
	if err != nil || !ok {
		t.Fatalf("TryLock after release: got %v, %v", ok, err)
	}
	l.Release()
}

// On Linux, Running tests the lock without taking it, so that
// `banpush status` can never make a push believe a sender is running.
func TestSenderRunningDoesNotTakeTheLock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Running takes the lock briefly outside Linux")
	}
	s := newSpool(t)
	l, _, err := TryLock(s)
	if err != nil {
		t.Fatal(err)
	}
	l.Release() // the lock file now exists
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				Running(s)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := 0; i < 20000; i++ {
		l, ok, err := TryLock(s)
		if err != nil || !ok {
			t.Fatalf("TryLock %d while status runs: got %v, %v, want the lock", i, ok, err)
		}
		l.Release()
	}
}
