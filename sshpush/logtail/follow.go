package logtail

import (
	"context"
	"time"
)

// Follow calls run now and then every interval until ctx is done or run
// returns an error, which it returns (nil when ctx ended it). run decides
// which errors are worth stopping for: apply-unbans and the fast path
// follow the received log with it, a run every --interval.
func Follow(ctx context.Context, interval time.Duration, run func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := run(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
