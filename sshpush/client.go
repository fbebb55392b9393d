package sshpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

// clientVersion is what sshd logs as the client's software.
const clientVersion = "SSH-2.0-banpush"

// Client is one authenticated SSH connection to a peer. Each request runs
// in a session of its own; requests may run concurrently from several
// goroutines. After a request fails with ClassUnreachable or ClassTimeout
// the connection is gone or closed: Close the Client and Dial again.
type Client struct {
	peer string
	opts Options
	ssh  *ssh.Client

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the Target, verifies its host key against the
// known_hosts files, and authenticates with the configured keys. It fails
// within ConnectTimeout + HandshakeTimeout, or sooner if ctx ends. Nothing
// is sent to a server whose host key does not verify: the check is part of
// the key exchange, before authentication.
func Dial(ctx context.Context, t Target, o Options) (*Client, error) {
	o = o.withDefaults()
	peer := t.peer()
	if err := t.check(); err != nil {
		return nil, &Error{Peer: peer, Class: ClassConfig, Err: err}
	}
	h, err := loadHostKeys(t)
	if err != nil {
		return nil, &Error{Peer: peer, Class: ClassConfig, Err: err}
	}
	ids := loadIdentities(ctx, t, o.Warn)
	defer ids.close()

	hk := &hostKeyCheck{h: h}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(ids.signers...)},
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: h.algorithms(false),
		ClientVersion:     clientVersion,
	}
	c, err := handshake(ctx, t, o, cfg)
	if err != nil {
		if e := hk.failure(peer); e != nil {
			return nil, e
		}
		var e *Error
		if errors.As(err, &e) && e.Class == ClassAuth {
			e.Err = fmt.Errorf("%w (user %s, %s)", e.Err, t.User, ids.describe())
		}
		return nil, err
	}
	return &Client{peer: peer, opts: o, ssh: c}, nil
}

// handshake dials the Target and runs the SSH handshake with cfg under the
// connect and handshake deadlines. Its errors are *Error values; host key
// failures are the caller's to recognize.
func handshake(ctx context.Context, t Target, o Options, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	peer := t.peer()
	d := net.Dialer{Timeout: t.connectTimeout()}
	conn, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		class := classifyNet(err)
		if class == ClassTimeout && !Ended(ctx) {
			return nil, newError(peer, class, "no TCP connection to %s within %s: %w", t.Addr(), t.connectTimeout(), err)
		}
		return nil, newError(peer, class, "cannot connect to %s: %w", t.Addr(), err)
	}

	deadline := time.Now().Add(o.HandshakeTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(deadline) {
		deadline = cd // the context's deadline is the one that applies
	}
	conn.SetDeadline(deadline)
	// A context that ends during the handshake moves the deadline to the
	// past, which fails whatever read or write is under way.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(conn, t.KnownHostsAddr(), cfg)
	if !stop() && err == nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		switch {
		case ctx.Err() != nil:
			return nil, newError(peer, ClassTimeout, "SSH handshake with %s: %w", t.Addr(), ctx.Err())
		case Ended(ctx) && classifyNet(err) == ClassTimeout:
			return nil, newError(peer, ClassTimeout, "SSH handshake with %s: %w", t.Addr(), context.DeadlineExceeded)
		case classifyNet(err) == ClassTimeout:
			return nil, newError(peer, ClassTimeout, "no SSH handshake with %s within %s: %w", t.Addr(), o.HandshakeTimeout, err)
		case authFailed(err):
			return nil, newError(peer, ClassAuth, "authentication failed: %w", err)
		case closedEarly(err):
			return nil, newError(peer, ClassUnreachable,
				"connection to %s closed during the SSH handshake (sshd drops connections past MaxStartups): %w", t.Addr(), err)
		}
		return nil, newError(peer, ClassUnreachable, "SSH handshake with %s failed: %w", t.Addr(), err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// Ended reports whether ctx has ended, or its deadline has passed: a dial or
// a read cut by that deadline can fail a moment before ctx notices, and the
// failure is the deadline's, not the peer's.
func Ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// Close closes the connection. Requests still running fail.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.ssh.Close()
		if errors.Is(c.closeErr, net.ErrClosed) {
			c.closeErr = nil
		}
	})
	return c.closeErr
}

// PingReply is the receiver's answer to a ping (wire.Ping).
type PingReply struct {
	Peer    string        // the name the receiver was installed with (its --peer)
	Version string        // the receiver's banpush version
	RTT     time.Duration // from opening the session to the receiver's exit
}

// Ping sends a ping request and checks that a banpush receiver answered.
func (c *Client) Ping(ctx context.Context) (PingReply, error) {
	start := time.Now()
	res, err := c.run(ctx, wire.Ping, nil)
	if err != nil {
		return PingReply{}, err
	}
	if e := c.reply(res); e != nil {
		return PingReply{}, e
	}
	p, err := wire.ParsePing(res.stdout)
	if err != nil {
		return PingReply{}, c.resultError(res, ClassReceiverError, "malformed ping reply from the receiver")
	}
	return PingReply{Peer: p.Peer, Version: p.Version, RTT: time.Since(start)}, nil
}

// Ack is the receiver's answer to a batch (see wire.Answer).
type Ack struct {
	Accepted int // records written to the receiver's log
	Refused  int // records refused (the reasons are in Stderr)

	// Stderr is what the receiver wrote on stderr (one line per refused
	// record), reduced to printable ASCII lines, at most 4 KiB.
	Stderr string

	// Limited counts the records refused for the receiver's rate limit
	// (included in Refused), and LimitedFrom is the line of the batch (from
	// 1) of the first: it and the records after it should stay queued.
	Limited, LimitedFrom int
}

func ackOf(a wire.Answer, stderr string) Ack {
	return Ack{Accepted: a.Accepted, Refused: a.Refused, Stderr: stderr, Limited: a.Limited, LimitedFrom: a.LimitedFrom}
}

// Ban sends a ban request (wire.Ban) with batch on stdin: records encoded
// with wire.AppendRecord. It returns once the receiver has written and
// synced the accepted records. An error means the batch may or may not have
// been written (delivery is at least once): a retryable error calls for
// sending it again. An answer that does not account for exactly the
// records of the batch is an error: the sender must not move its cursor on
// it.
func (c *Client) Ban(ctx context.Context, batch []byte) (Ack, error) {
	return c.records(ctx, wire.Ban, batch)
}

// Unban sends an unban request (wire.Unban) with batch on stdin, as Ban
// does. A receiver that does not know the request (one older than it)
// fails it with ClassTooOld: the unbans must stay queued until it is
// upgraded. A receiver that does not allow this key to unban refuses
// every record of the batch in its answer.
func (c *Client) Unban(ctx context.Context, batch []byte) (Ack, error) {
	ack, err := c.records(ctx, wire.Unban, batch)
	return ack, tooOld(err, "unbans", "the unbans stay queued")
}

// Fail sends a fail request (wire.Fail) with batch on stdin: failure
// reports, records with a count of failures. It is answered as Ban is. A
// receiver that does not know the request fails it with ClassTooOld; a
// receiver whose line for this key does not turn the fleet policy on
// refuses every record in its answer.
func (c *Client) Fail(ctx context.Context, batch []byte) (Ack, error) {
	ack, err := c.records(ctx, wire.Fail, batch)
	return ack, tooOld(err, "failure reports", "the reports are dropped")
}

// tooOld makes the error of a request the receiver does not know
// ClassTooOld, saying what happens to what was sent.
func tooOld(err error, what, then string) error {
	var e *Error
	if errors.As(err, &e) && e.Class == ClassRejected && wire.VerdictOf(e.ExitStatus) == wire.TooOld {
		e.Class = ClassTooOld
		e.Err = fmt.Errorf("the receiver's banpush is too old for %s (exit %d): upgrade banpush there; %s", what, e.ExitStatus, then)
	}
	return err
}

// records sends a request whose stdin is a batch of records and parses
// the answer that must account for each of them.
func (c *Client) records(ctx context.Context, req wire.Request, batch []byte) (Ack, error) {
	res, err := c.run(ctx, req, batch)
	if err != nil {
		return Ack{}, err
	}
	if e := c.reply(res); e != nil {
		return Ack{}, e
	}
	a, err := wire.ParseAnswer(res.stdout, wire.CountRecords(batch))
	if err != nil {
		return Ack{}, c.resultError(res, ClassReceiverError, "malformed reply from the receiver to %q", req.String())
	}
	return ackOf(a, res.stderr), nil
}

// bounded runs fn, which works on the connection, and closes the whole
// connection if ctx ends first: with x/crypto/ssh nothing else releases a
// session open, read or write blocked on a peer that stopped answering. It
// returns once fn has returned, so fn's results are safe to read.
func (c *Client) bounded(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.Close()
		<-done
		return ctx.Err()
	}
}

// newSession opens a session, classifying a failure as an *Error. Call it
// under bounded.
func (c *Client) newSession() (*ssh.Session, error) {
	s, err := c.ssh.NewSession()
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, newError(c.peer, ClassReceiverError, "the server refused a session: %w", err)
		}
		return nil, newError(c.peer, ClassUnreachable, "cannot open a session: %w", err)
	}
	return s, nil
}

// result is what a request produced.
type result struct {
	stdout     []byte // at most maxStdout bytes
	long       bool   // stdout was longer than maxStdout
	stderr     string // cleaned
	exitStatus int
	signal     string
}

// run runs req in a new session with stdin, under the session deadline.
// It returns an error only when the request did not complete: no session,
// connection lost, deadline passed.
func (c *Client) run(ctx context.Context, req wire.Request, stdin []byte) (*result, error) {
	cmd := req.String()
	ctx, cancel := context.WithTimeout(ctx, c.opts.SessionTimeout)
	defer cancel()
	var stdout, stderr capped
	stdout.max, stderr.max = maxStdout, maxStderr
	var s *ssh.Session
	err := c.bounded(ctx, func() (err error) {
		if s, err = c.newSession(); err != nil {
			return err
		}
		defer s.Close()
		s.Stdout, s.Stderr = &stdout, &stderr
		s.Stdin = bytes.NewReader(stdin)
		return s.Run(cmd)
	})
	switch {
	case ctx.Err() != nil:
		return nil, newError(c.peer, ClassTimeout, "%q got no answer in time (connection closed): %w", cmd, ctx.Err())
	case s == nil:
		return nil, err
	}

	res := &result{stdout: stdout.buf, long: stdout.over, stderr: cleanOutput(stderr.buf)}
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.exitStatus, res.signal = exitErr.ExitStatus(), exitErr.Signal()
	case errors.As(err, &missing):
		return nil, &Error{Peer: c.peer, Class: ClassUnreachable, Stderr: res.stderr,
			Err: fmt.Errorf("%q ended without an exit status", cmd)}
	default:
		return nil, &Error{Peer: c.peer, Class: ClassUnreachable, Stderr: res.stderr,
			Err: fmt.Errorf("%q did not complete: %w", cmd, err)}
	}
	return res, nil
}

// reply interprets a completed request from the receiver's exit status
// (wire.VerdictOf) and whether its output is banpush's at all
// (wire.IsBanpush); nil means there is an answer on stdout to parse. How
// the verdicts map to classes:
//
//	not banpush (exit 127, or output that is not banpush's)   not-banpush
//	retry later (exit 75)                                     busy
//	cannot write (exit 73)                                    receiver-cannot-write
//	refused, too old (exit 64, 65, 78)                        rejected
//	a signal, or any other status                             receiver-error
func (c *Client) reply(res *result) *Error {
	v := wire.VerdictOf(res.exitStatus)
	switch {
	case v == wire.NotBanpush:
		return c.resultError(res, ClassNotBanpush, "no banpush receiver answered: the account has no such command (exit %d)", res.exitStatus)
	case !wire.IsBanpush(res.stdout, []byte(res.stderr)):
		what := "unexpected output"
		if res.exitStatus != 0 || res.signal != "" {
			what = res.exit()
		} else if len(res.stdout) == 0 {
			what = "no output"
		}
		return c.resultError(res, ClassNotBanpush, "no banpush receiver answered: %s", what)
	case res.signal != "":
		return c.resultError(res, ClassReceiverError, "receiver %s", res.exit())
	case v == wire.RetryLater:
		return c.resultError(res, ClassBusy, "receiver busy, try again later (exit %d)", res.exitStatus)
	case v == wire.CannotWrite:
		return c.resultError(res, ClassCannotWrite, "the receiver cannot write its log (exit %d)", res.exitStatus)
	case v == wire.Refused, v == wire.TooOld:
		return c.resultError(res, ClassRejected, "receiver refused the request (exit %d)", res.exitStatus)
	case v != wire.Answered:
		return c.resultError(res, ClassReceiverError, "receiver failed (exit %d)", res.exitStatus)
	case res.long:
		return c.resultError(res, ClassReceiverError, "malformed reply from the receiver")
	}
	return nil
}

func (res *result) exit() string {
	if res.signal != "" {
		return "killed by signal " + record.Printable(res.signal)
	}
	return fmt.Sprintf("exit %d", res.exitStatus)
}

func (c *Client) resultError(res *result, class Class, format string, args ...any) *Error {
	e := newError(c.peer, class, format, args...)
	e.ExitStatus = res.exitStatus
	e.Stderr = res.stderr
	return e
}

// capped keeps the first max bytes written to it and discards the rest,
// so that a remote that writes without end neither grows memory nor
// blocks the session.
type capped struct {
	buf  []byte
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
		if len(p) > room {
			c.over = true
		}
	} else if len(p) > 0 {
		c.over = true
	}
	return len(p), nil
}
