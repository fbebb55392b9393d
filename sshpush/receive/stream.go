package receive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
)

// A stream ("banpush-v1 stream") carries many batches on one session, so a
// lingering sender pays for sshd's session, the shell and this process once
// instead of once per batch. Each batch is the same records as for
// "banpush-v1 ban", one a line, followed by an empty line; the receiver
// answers each with the same "banpush-v1 ok accepted=N refused=M" line, after
// the fsync, and the refusals on stderr. The limits of a ban request apply
// to each batch. A batch cut short by the end of the input is dropped, not
// answered: the sender sends it again.

// StreamLimits bound a stream as a whole.
type StreamLimits struct {
	MaxBatches int // answer at most this many batches, then end the stream
	MaxShown   int // refusal lines shown per batch
}

// Serve handles a whole "banpush-v1 stream" request. It returns nil at the
// end of the input or after lim.MaxBatches, ErrBatchTooLarge for a batch over
// the limits (the stream ends: the sender falls back), a *TempError when the
// log is unavailable, or the error reading r (a deadline, say). Whatever it
// returns, every batch it answered was written and synced.
func Serve(ctx context.Context, cfg Config, r io.Reader, stdout, stderr io.Writer, lim StreamLimits) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 0; lim.MaxBatches <= 0 || n < lim.MaxBatches; n++ {
		data, err := readFrame(br)
		if errors.Is(err, io.EOF) {
			return nil // the sender is done, or died mid-batch
		}
		if err != nil {
			return err
		}
		lines, err := parseBatch(data)
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

// readFrame reads the lines of one batch, up to and without the empty line
// that ends it. It returns io.EOF if the input ends first, and
// ErrBatchTooLarge past MaxBatchBytes.
func readFrame(br *bufio.Reader) ([]byte, error) {
	var frame []byte
	atLineStart := true
	lines := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(frame)+len(chunk) > MaxBatchBytes+1 {
			return nil, ErrBatchTooLarge
		}
		if atLineStart && len(chunk) == 1 && chunk[0] == '\n' {
			return frame, nil
		}
		frame = append(frame, chunk...)
		switch {
		case err == nil:
			atLineStart = true
			lines++
		case errors.Is(err, bufio.ErrBufferFull):
			atLineStart = false // a long line: keep reading it
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		default:
			return nil, fmt.Errorf("receive: reading batch: %w", err)
		}
		if len(frame) > MaxBatchBytes {
			return nil, ErrBatchTooLarge
		}
		if lines > MaxRecords {
			return nil, ErrBatchTooLarge
		}
	}
}
