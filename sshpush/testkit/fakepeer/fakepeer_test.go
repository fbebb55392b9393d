package fakepeer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

// run logs in to s with key and runs cmd with stdin, as a client would.
func run(t *testing.T, s *Server, key ssh.Signer, cmd, stdin string) (stdout, stderr string, status int) {
	t.Helper()
	c, err := ssh.Dial("tcp", s.ln.Addr().String(), &ssh.ClientConfig{
		User:            "banpush",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKeys[0].PublicKey()),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var o, e bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader(stdin), &o, &e
	err = sess.Run(cmd)
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		status = ee.ExitStatus()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), status
}

func TestReplies(t *testing.T) {
	key := NewSigner(t)
	s := Start(t, Config{Authorized: []ssh.PublicKey{key.PublicKey()}})
	out, _, status := run(t, s, key, wire.Ping.String(), "")
	if out != "banpush-v1 ok peer=srv version=test\n" || status != 0 {
		t.Errorf("ping: %q, exit %d", out, status)
	}
	out, _, status = run(t, s, key, wire.Ban.String(), "203.0.113.1\n203.0.113.2\n")
	if out != "banpush-v1 ok accepted=2 refused=0\n" || status != 0 {
		t.Errorf("ban: %q, exit %d", out, status)
	}
	if got := string(s.LastStdin()); got != "203.0.113.1\n203.0.113.2\n" {
		t.Errorf("LastStdin %q", got)
	}
	if _, _, status = run(t, s, key, "id", ""); status != wire.ExitRequest {
		t.Errorf("unknown request: exit %d", status)
	}
	if s.Sessions.Load() != 3 || s.Conns.Load() != 3 {
		t.Errorf("%d sessions, %d connections; want 3 and 3", s.Sessions.Load(), s.Conns.Load())
	}
}

// TestReceiver: the real receiver behind the fake peer writes its log and
// answers; Busy and NoStream change its answers as documented.
func TestReceiver(t *testing.T) {
	key := NewSigner(t)
	r := NewReceiver(t)
	s := Start(t, Config{Authorized: []ssh.PublicKey{key.PublicKey()}, Handler: r.Handle})
	out, _, status := run(t, s, key, wire.Ban.String(), "203.0.113.1\n127.0.0.1\n")
	if out != "banpush-v1 ok accepted=1 refused=1\n" || status != 0 {
		t.Errorf("ban: %q, exit %d", out, status)
	}
	if got := r.Logged(); len(got) != 1 || got["203.0.113.1"] != 1 {
		t.Errorf("logged %v", got)
	}
	r.Busy.Store(1)
	if _, _, status = run(t, s, key, wire.Ban.String(), "203.0.113.2\n"); status != wire.ExitTemp {
		t.Errorf("busy: exit %d", status)
	}
	r.NoStream.Store(true)
	if _, _, status = run(t, s, key, wire.Stream.String(), "203.0.113.3\n\n"); status != wire.ExitRequest {
		t.Errorf("old receiver, stream: exit %d", status)
	}
	r.NoStream.Store(false)
	out, _, status = run(t, s, key, wire.Stream.String(), "203.0.113.3\n\n203.0.113.4\n\n")
	if strings.Count(out, "accepted=1") != 2 || status != 0 || r.Streams.Load() != 1 {
		t.Errorf("stream: %q, exit %d, %d streams", out, status, r.Streams.Load())
	}
	if n := len(r.Logged()); n != 3 {
		t.Errorf("%d addresses logged, want 3", n)
	}
}

// TestUnauthorized: a key the peer does not know gets nowhere.
func TestUnauthorized(t *testing.T) {
	s := Start(t, Config{Authorized: []ssh.PublicKey{NewSigner(t).PublicKey()}})
	_, err := ssh.Dial("tcp", s.ln.Addr().String(), &ssh.ClientConfig{
		User: "banpush", Auth: []ssh.AuthMethod{ssh.PublicKeys(NewSigner(t))},
		HostKeyCallback: ssh.FixedHostKey(s.HostKeys[0].PublicKey()), Timeout: 5 * time.Second,
	})
	if err == nil || s.AuthAttempts.Load() == 0 {
		t.Errorf("got %v after %d attempts, want refused", err, s.AuthAttempts.Load())
	}
}
