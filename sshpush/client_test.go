package sshpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// okServer starts the test receiver with one authorized key and returns
// it with a Target that reaches it.
func okServer(t *testing.T, cfg serverConfig) (*testServer, Target) {
	t.Helper()
	key, signer, _ := keyFile(t, t.TempDir(), "id_ed25519", "")
	cfg.authorized = append(cfg.authorized, signer.PublicKey())
	s := startServer(t, cfg)
	return s, s.target(t, []string{s.KnownHostsLine(s.HostKeys[0].PublicKey())}, key)
}

func TestPingAndBan(t *testing.T) {
	s, target := okServer(t, serverConfig{})
	c := dial(t, target, Options{})

	p, err := c.Ping(t.Context())
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if p.Peer != "srv" || p.Version != "test" || p.RTT <= 0 {
		t.Errorf("Ping: got %+v, want peer srv, version test, RTT > 0", p)
	}

	batch := []byte("203.0.113.1 jail=sshd\n203.0.113.2\n")
	ack, err := c.Ban(t.Context(), batch)
	if err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if ack.Accepted != 2 || ack.Refused != 0 {
		t.Errorf("Ban: got %+v, want accepted 2, refused 0", ack)
	}
	if got := s.LastStdin(); !bytes.Equal(got, batch) {
		t.Errorf("receiver got stdin %q, want %q", got, batch)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s, target := okServer(t, serverConfig{})
	c := dial(t, target, Options{})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := []byte(strings.Repeat(fmt.Sprintf("203.0.113.%d\n", i), i+1))
			ack, err := c.Ban(t.Context(), batch)
			if err == nil && ack.Accepted != i+1 {
				err = fmt.Errorf("batch %d: got accepted %d, want %d", i, ack.Accepted, i+1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := s.Sessions.Load(); got != n {
		t.Errorf("got %d sessions, want %d", got, n)
	}
}

func TestRequestFailures(t *testing.T) {
	tests := []struct {
		name       string
		reply      reply
		want       Class
		retryable  bool
		wantStatus int
		wantInMsg  string
	}{
		{"busy", reply{stderr: "banpush: error: log busy\n", status: 75}, ClassBusy, true, 75, "log busy"},
		{"busy behind the shell's own lines", reply{stderr: "rm: cannot remove '/root/tmp.x'\nbanpush: error: log busy\n", status: 75}, ClassBusy, true, 75, `said: "banpush: error: log busy"`},
		{"cannot write", reply{stderr: "banpush: error: cannot write the log, nothing written: opening log: permission denied\n", status: 73}, ClassCannotWrite, false, 73, "opening log: permission denied"},
		{"usage", reply{stderr: "banpush: error: unknown request\n", status: 64}, ClassRejected, false, 64, "unknown request"},
		{"too large", reply{stderr: "banpush: error: batch too large\n", status: 65}, ClassRejected, false, 65, "exit 65"},
		{"config", reply{stderr: "banpush: error: bad --log\n", status: 78}, ClassRejected, false, 78, "bad --log"},
		{"software", reply{stderr: "banpush: internal error\n", status: 70}, ClassReceiverError, false, 70, "exit 70"},
		{"signal", reply{stderr: "banpush: oops\n", signal: "KILL"}, ClassReceiverError, false, 137, "signal KILL"},
		{"shell account", reply{stderr: "sh: 1: banpush-v1: not found\n", status: 127}, ClassNotBanpush, false, 127, "exit 127"},
		{"other program", reply{stdout: "Welcome!\n"}, ClassNotBanpush, false, 0, "unexpected output"},
		{"silent program", reply{}, ClassNotBanpush, false, 0, "no output"},
		{"other failure", reply{stderr: "permission denied\n", status: 1}, ClassNotBanpush, false, 1, "exit 1"},
		{"malformed reply", reply{stdout: "banpush-v1 ok accepted=x refused=0\n"}, ClassReceiverError, false, 0, "malformed"},
		{"two lines", reply{stdout: "banpush-v1 ok accepted=1 refused=0\nmore\n"}, ClassReceiverError, false, 0, "malformed"},
		{"not ok", reply{stdout: "banpush-v1 nope\n"}, ClassReceiverError, false, 0, "malformed"},
		{"long reply", reply{stdout: "banpush-v1 ok accepted=1 refused=0 x=" + strings.Repeat("a", 5000) + "\n"}, ClassReceiverError, false, 0, "malformed"},
		{"hostile stderr", reply{stderr: "banpush: \x1b[31mred\x00\r\n\xff\xfe\n", status: 65}, ClassRejected, false, 65, `"banpush: ?[31mred?"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, target := okServer(t, serverConfig{handler: func(string, []byte) reply { return tt.reply }})
			c := dial(t, target, Options{})
			_, err := c.Ban(t.Context(), []byte("203.0.113.1\n"))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Ban: got %v, want an *Error", err)
			}
			if e.Class != tt.want || ClassOf(err) != tt.want {
				t.Errorf("got class %q, want %q (%v)", e.Class, tt.want, err)
			}
			if e.Retryable() != tt.retryable {
				t.Errorf("got Retryable %v, want %v", e.Retryable(), tt.retryable)
			}
			if e.ExitStatus != tt.wantStatus {
				t.Errorf("got ExitStatus %d, want %d", e.ExitStatus, tt.wantStatus)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantInMsg) {
				t.Errorf("got message %q, want it to contain %q", msg, tt.wantInMsg)
			}
			checkPrintable(t, "Error()", msg)
			checkPrintable(t, "Stderr", strings.ReplaceAll(e.Stderr, "\n", ""))
			if len(msg) > maxErrorLen+3 {
				t.Errorf("got message of %d bytes, want at most %d", len(msg), maxErrorLen+3)
			}
			// The connection survives a failed request.
			if _, err := c.Ping(t.Context()); ClassOf(err) != tt.want {
				t.Errorf("Ping after the failure: got %v, want class %q again", err, tt.want)
			}
		})
	}
}

func checkPrintable(t *testing.T, what, s string) {
	t.Helper()
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			t.Errorf("%s: got byte %#x at %d in %q, want printable ASCII only", what, s[i], i, s)
			return
		}
	}
}

func TestBanRefusalsInAck(t *testing.T) {
	_, target := okServer(t, serverConfig{handler: func(string, []byte) reply {
		return reply{
			stdout: "banpush-v1 ok accepted=1 refused=1 future=x\n",
			stderr: "banpush: line 2: refused: loopback address\n",
		}
	}})
	c := dial(t, target, Options{})
	ack, err := c.Ban(t.Context(), []byte("203.0.113.1\n127.0.0.1\n"))
	if err != nil {
		t.Fatalf("Ban: %v", err)
	}
	want := Ack{Accepted: 1, Refused: 1, Stderr: "banpush: line 2: refused: loopback address"}
	if ack != want {
		t.Errorf("got %+v, want %+v", ack, want)
	}
}

func TestPingMalformed(t *testing.T) {
	tests := []struct{ name, stdout string }{
		{"no peer", "banpush-v1 ok version=1\n"},
		{"bad peer", "banpush-v1 ok peer=a/b version=1\n"},
		{"no version", "banpush-v1 ok peer=x\n"},
		{"dup field", "banpush-v1 ok peer=x peer=y version=1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, target := okServer(t, serverConfig{handler: func(string, []byte) reply { return reply{stdout: tt.stdout} }})
			c := dial(t, target, Options{})
			_, err := c.Ping(t.Context())
			if got := ClassOf(err); got != ClassReceiverError {
				t.Errorf("got class %q (%v), want %q", got, err, ClassReceiverError)
			}
		})
	}
}

func TestSessionTimeout(t *testing.T) {
	_, target := okServer(t, serverConfig{handler: func(string, []byte) reply { return reply{hang: true} }})
	c := dial(t, target, Options{SessionTimeout: 200 * time.Millisecond})
	_, err := c.Ban(t.Context(), []byte("203.0.113.1\n"))
	if got := ClassOf(err); got != ClassTimeout {
		t.Fatalf("Ban: got class %q (%v), want %q", got, err, ClassTimeout)
	}
	if !err.(*Error).Retryable() {
		t.Errorf("got Retryable false for %v, want true", err)
	}
	// The connection was closed: the next request fails at once.
	if _, err := c.Ping(t.Context()); ClassOf(err) != ClassUnreachable {
		t.Errorf("Ping after a timeout: got %v, want class %q", err, ClassUnreachable)
	}
}

// A receiver that reads nothing leaves a large batch stuck in the SSH
// channel window: the deadline must still end the request.
func TestSessionTimeoutStalledStdin(t *testing.T) {
	_, target := okServer(t, serverConfig{stall: true})
	c := dial(t, target, Options{SessionTimeout: 200 * time.Millisecond})
	batch := bytes.Repeat([]byte("203.0.113.1\n"), 400_000) // 4.8 MB, twice the window
	_, err := c.Ban(t.Context(), batch)
	if got := ClassOf(err); got != ClassTimeout {
		t.Fatalf("Ban: got class %q (%v), want %q", got, err, ClassTimeout)
	}
}

func TestSessionContextCanceled(t *testing.T) {
	_, target := okServer(t, serverConfig{handler: func(string, []byte) reply { return reply{hang: true} }})
	c := dial(t, target, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Ping(ctx)
	if !errors.Is(err, context.Canceled) || ClassOf(err) != ClassTimeout {
		t.Errorf("got %v, want a timeout wrapping context.Canceled", err)
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassOK},
		{"error", &Error{Class: ClassAuth}, ClassAuth},
		{"wrapped", fmt.Errorf("x: %w", &Error{Class: ClassBusy}), ClassBusy},
		{"deadline", context.DeadlineExceeded, ClassTimeout},
		{"other", errors.New("x"), ClassOther},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// lateCtx is a context whose deadline has passed but which has not noticed
// yet, as a context looks for a moment after its deadline.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestEnded(t *testing.T) {
	if Ended(context.Background()) {
		t.Error("a background context has ended")
	}
	if !Ended(lateCtx{context.Background()}) {
		t.Error("a context past its deadline has not ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !Ended(ctx) {
		t.Error("a cancelled context has not ended")
	}
}
