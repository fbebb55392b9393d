package receive

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/banpush/banpush/sshpush/wire"
)

// A stream (wire.Stream) carries many batches on one session, so a
// lingering sender pays for sshd's session, the shell and this process once
// instead of once per batch. Each batch is framed as wire.ReadFrame reads
// it and answered like a ban request, after the fsync, with the refusals on
// stderr. The limits of a ban request apply to each batch. A batch cut
// short by the end of the input is dropped, not answered: the sender sends
// it again.

// StreamLimits bound a stream as a whole.
type StreamLimits struct {
	MaxBatches int // answer at most this many batches, then end the stream
	MaxShown   int // refusal lines shown per batch
}

// Serve handles a whole stream request (wire.Stream). It returns nil at the
// end of the input or after lim.MaxBatches, ErrBatchTooLarge for a batch over
// the limits (the stream ends: the sender falls back), a *TempError when the
// log is busy, a *WriteError when it cannot be written, or the error reading r (a deadline, say). Whatever it
// returns, every batch it answered was written and synced.
func Serve(ctx context.Context, cfg Config, r io.Reader, stdout, stderr io.Writer, lim StreamLimits) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 0; lim.MaxBatches <= 0 || n < lim.MaxBatches; n++ {
		data, err := wire.ReadFrame(br)
		if errors.Is(err, io.EOF) {
			return nil // the sender is done, or died mid-batch
		}
		if err != nil {
			return err
		}
		lines, err := wire.ParseBatch(data)
		if err != nil {
			return err
		}
		res, err := cfg.accept(ctx, lines)
		if err != nil {
			return err
		}
		if err := WriteAnswer(stdout, stderr, res, lim.MaxShown); err != nil {
			return err
		}
		if f, ok := stdout.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}
