package logtail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLockCursor: one follower at a time per cursor, and never in a
// directory others may write.
func TestLockCursor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cursor := filepath.Join(dir, "cursor")
	ctx := context.Background()
	first, err := LockCursor(ctx, cursor, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockCursor(ctx, cursor, 50*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock while the first is held: got %v, want ErrBusy", err)
	}
	first.Close()
	again, err := LockCursor(ctx, cursor, time.Second)
	if err != nil {
		t.Fatalf("lock after the first was released: %v", err)
	}
	again.Close()

	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := LockCursor(ctx, cursor, time.Second); !errors.Is(err, ErrUnsafeState) {
		t.Fatalf("a world-writable state directory: got %v, want ErrUnsafeState", err)
	}
}
