package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/banpush/banpush/sshpush/record"
)

// Limits of one batch, for a "ban" request and for each batch of a stream.
// A batch over either is refused whole.
const (
	MaxRecords    = 10000
	MaxBatchBytes = 1 << 20
)

// ErrBatchTooLarge: over MaxRecords records or MaxBatchBytes bytes.
var ErrBatchTooLarge = fmt.Errorf("batch refused: more than %d records or %d bytes", MaxRecords, MaxBatchBytes)

// AppendRecord appends r to a batch: its record text and a newline.
func AppendRecord(batch []byte, r record.Record) []byte {
	return append(r.AppendText(batch), '\n')
}

// CountRecords is the number of records in a batch built with AppendRecord:
// the number an answer must account for.
func CountRecords(batch []byte) int {
	return bytes.Count(batch, []byte{'\n'})
}

// AppendFrame appends one batch of a stream to b: the batch, then the empty
// line that ends it. batch must be empty or end with a newline.
func AppendFrame(b, batch []byte) []byte {
	return append(append(b, batch...), '\n')
}

// Line is one parsed line of a batch: a record, or why it is not one.
type Line struct {
	Record record.Record
	Err    error
}

// ReadBatch reads the whole stdin of a "ban" request, at most
// MaxBatchBytes, and parses every line (see ParseBatch). It returns
// ErrBatchTooLarge, or the error of r.
func ReadBatch(r io.Reader) ([]Line, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wire: reading batch: %w", err)
	}
	if len(data) > MaxBatchBytes {
		return nil, ErrBatchTooLarge
	}
	return ParseBatch(data)
}

// ParseBatch splits a batch into lines and parses each as a record. A last
// line without its newline is refused (record.ErrIncomplete): the batch was
// cut short (a pusher that died mid-write), and a cut address can still be
// a valid, different one.
func ParseBatch(data []byte) ([]Line, error) {
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	if n > MaxRecords || len(data) > MaxBatchBytes {
		return nil, ErrBatchTooLarge
	}
	lines := make([]Line, 0, n)
	for len(data) > 0 {
		l, rest, found := bytes.Cut(data, []byte{'\n'})
		data = rest
		if !found {
			lines = append(lines, Line{Err: record.ErrIncomplete})
			break
		}
		rec, err := record.Parse(l)
		lines = append(lines, Line{Record: rec, Err: err})
	}
	return lines, nil
}

// ReadFrame reads the next batch of a stream: its lines, up to and without
// the empty line that ends it. It returns io.EOF if the input ends before
// that line (a batch cut short is dropped, never answered: the sender sends
// it again), and ErrBatchTooLarge past the limits of a batch.
func ReadFrame(br *bufio.Reader) ([]byte, error) {
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
			return nil, fmt.Errorf("wire: reading batch: %w", err)
		}
		if len(frame) > MaxBatchBytes || lines > MaxRecords {
			return nil, ErrBatchTooLarge
		}
	}
}
