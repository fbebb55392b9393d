package logtail

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestFollowStops: Follow ends when its context does, with no error, and
// at the first error of a run, with that error.
func TestFollowStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Follow(ctx, time.Millisecond, func(context.Context) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("cancelled: got %v after %d runs", err, n)
	}
	stop := errors.New("stop")
	if err := Follow(context.Background(), time.Millisecond, func(context.Context) error { return stop }); err != stop {
		t.Fatalf("got %v, want the run's error", err)
	}
}
