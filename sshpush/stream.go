package sshpush

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

// Stream is one stream session (wire.Stream): batches go out on it one
// after another, each answered like a ban request, without a new session,
// shell and receiver process per batch. A Stream is used by one goroutine
// at a time.
type Stream struct {
	c      *Client
	s      *ssh.Session
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncCapped
	exited chan struct{} // closed when the session has ended
	err    error         // the session's end, once exited is closed
	used   bool
}

// OpenStream starts a stream session, within the session timeout. A
// receiver too old to know streams fails the first Send with an *Error
// whose ExitStatus says so (see Unsupported).
func (c *Client) OpenStream(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.SessionTimeout)
	defer cancel()
	st := &Stream{c: c, stderr: &syncCapped{capped: capped{max: maxStderr}}, exited: make(chan struct{})}
	err := c.bounded(ctx, func() (err error) {
		if st.s, err = c.newSession(); err != nil {
			return err
		}
		st.s.Stderr = st.stderr
		var out io.Reader
		if st.stdin, err = st.s.StdinPipe(); err == nil {
			if out, err = st.s.StdoutPipe(); err == nil {
				st.stdout = bufio.NewReaderSize(out, maxStdout)
				err = st.s.Start(wire.Stream.String())
			}
		}
		if err != nil {
			st.s.Close()
			return newError(c.peer, ClassUnreachable, "cannot start a stream: %w", err)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil, newError(c.peer, ClassTimeout, "cannot start a stream in time (connection closed): %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	go func() {
		st.err = st.s.Wait()
		close(st.exited)
	}()
	return st, nil
}

// Unsupported reports whether err says the receiver does not know the
// request it was sent (wire.TooOld): for a stream, send ban requests to it
// instead.
func Unsupported(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == ClassRejected && wire.VerdictOf(e.ExitStatus) == wire.TooOld
}

// Used reports whether a batch has already been answered on the stream: a
// stream that fails after that was most likely ended by the receiver's idle
// or batch limit, and a new one may be opened at once.
func (st *Stream) Used() bool { return st.used }

// Send sends one batch (records encoded one per line, as for Ban) and
// waits for its answer, at most the session timeout; past it the whole
// connection is closed. An error ends the stream: Close it. The receiver's
// stderr is copied apart from its answers, so Ack.Stderr may hold lines of
// an earlier batch, or miss some of this one.
func (st *Stream) Send(ctx context.Context, batch []byte) (Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, st.c.opts.SessionTimeout)
	defer cancel()
	if st.stdout.Buffered() > 0 {
		// An answer nobody asked for: the stream is out of step.
		return Ack{}, newError(st.c.peer, ClassReceiverError, "unexpected output on the stream")
	}
	var line []byte
	err := st.c.bounded(ctx, func() error {
		frame := wire.AppendFrame(make([]byte, 0, len(batch)+1), batch)
		if _, err := st.stdin.Write(frame); err != nil {
			return err
		}
		l, err := st.stdout.ReadSlice('\n')
		line = append([]byte(nil), l...)
		return err
	})
	if ctx.Err() != nil {
		return Ack{}, newError(st.c.peer, ClassTimeout, "%q got no answer in time (connection closed): %w", wire.Stream.String(), ctx.Err())
	}
	if err != nil {
		return Ack{}, st.ended(err)
	}
	st.used = true
	a, err := wire.ParseAnswer(line, wire.CountRecords(batch))
	if err != nil {
		return Ack{}, newError(st.c.peer, ClassReceiverError, "malformed stream reply from the receiver")
	}
	if a.Refused > 0 {
		// The receiver wrote the refusals to stderr before its answer, but
		// stderr is copied by a goroutine of its own: give it a moment.
		st.stderr.await(100 * time.Millisecond)
	}
	return ackOf(a, st.stderr.take()), nil
}

// ended turns the end of a stream into an error, classified like the end
// of a ban request from the receiver's exit status.
func (st *Stream) ended(ioErr error) error {
	st.wait()
	res := &result{stderr: st.stderr.take()}
	var exitErr *ssh.ExitError
	switch {
	case errors.As(st.err, &exitErr):
		res.exitStatus, res.signal = exitErr.ExitStatus(), exitErr.Signal()
	case st.err == nil:
		// Exit 0 without an answer: the receiver ended the stream.
		return newError(st.c.peer, ClassUnreachable, "stream ended by the receiver: %w", ioErr)
	default:
		return &Error{Peer: st.c.peer, Class: ClassUnreachable, Stderr: res.stderr,
			Err: fmt.Errorf("stream did not complete: %w", st.err)}
	}
	if e := st.c.reply(res); e != nil {
		return e
	}
	return newError(st.c.peer, ClassUnreachable, "stream ended: %w", ioErr)
}

// Close ends the stream: the receiver sees the end of its input and exits.
// A peer that does not let go within two seconds loses the connection.
func (st *Stream) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st.c.bounded(ctx, func() error {
		st.stdin.Close() // may block on a peer that stopped reading
		<-st.exited
		return nil
	})
	return st.s.Close()
}

// wait waits for the session to end, at most two seconds, then closes the
// connection so that it does.
func (st *Stream) wait() {
	select {
	case <-st.exited:
	case <-time.After(2 * time.Second):
		st.c.Close()
		<-st.exited
	}
}

// syncCapped is a capped buffer that the session's stderr copier and Send
// may use at once.
type syncCapped struct {
	mu sync.Mutex
	capped
}

func (c *syncCapped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capped.Write(p)
}

// ReadFrom copies the session's stderr into the buffer through a small
// one: the ssh package's copier uses it instead of io.Copy's 32 KiB
// buffer, which every stream held for its whole life (16 MiB for a sender
// lingering on 500 peers).
func (c *syncCapped) ReadFrom(r io.Reader) (int64, error) {
	var buf [512]byte
	var n int64
	for {
		k, err := r.Read(buf[:])
		if k > 0 {
			c.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// await waits, at most d, until a whole line has been written.
func (c *syncCapped) await(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		done := bytes.IndexByte(c.buf, '\n') >= 0 || c.over
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// take returns what was written since the last take, cleaned, and makes
// room for more.
func (c *syncCapped) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := cleanOutput(c.buf)
	c.buf, c.over = c.buf[:0], false
	return s
}
