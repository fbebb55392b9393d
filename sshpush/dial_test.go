package sshpush

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// wantClass checks err's class, its retryability and that its message is
// printable and contains every want.
func wantClass(t *testing.T, err error, class Class, retryable bool, want ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error of class %q", err, class)
	}
	if e.Class != class {
		t.Errorf("got class %q (%v), want %q", e.Class, err, class)
	}
	if e.Retryable() != retryable {
		t.Errorf("got Retryable %v for %v, want %v", e.Retryable(), err, retryable)
	}
	msg := err.Error()
	checkPrintable(t, "Error()", msg)
	if !strings.HasPrefix(msg, "sshpush: peer srv: ") {
		t.Errorf("got message %q, want it to start with the package and peer", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("got message %q, want it to contain %q", msg, w)
		}
	}
	return e
}

func TestHostKeys(t *testing.T) {
	ed, ec, rs := newEd25519(t), newECDSA(t), newRSA(t)
	hostCA, otherCA := newEd25519(t), newEd25519(t)
	hostCert := signCert(t, hostCA, ed.PublicKey(), ssh.HostCert, "127.0.0.1")
	certSigner, err := ssh.NewCertSigner(hostCert, ed)
	if err != nil {
		t.Fatal(err)
	}
	// certSigned is ed's host certificate from hostCA, as edit leaves it.
	certSigned := func(edit func(*ssh.Certificate)) ssh.Signer {
		c := signCert(t, hostCA, ed.PublicKey(), ssh.HostCert, "127.0.0.1")
		edit(c)
		c.Signature = nil
		if err := c.SignCert(rand.Reader, hostCA); err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewCertSigner(c, ed)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expired := certSigned(func(c *ssh.Certificate) {
		c.ValidAfter, c.ValidBefore = uint64(time.Now().Add(-48*time.Hour).Unix()), uint64(time.Now().Add(-24*time.Hour).Unix())
	})
	notYet := certSigned(func(c *ssh.Certificate) { c.ValidAfter = uint64(time.Now().Add(24 * time.Hour).Unix()) })
	otherHost := certSigned(func(c *ssh.Certificate) { c.ValidPrincipals = []string{"web2", "web2.example"} })
	line := func(s *testServer, k ssh.Signer) string { return s.KnownHostsLine(k.PublicKey()) }
	hostPort := func(s *testServer) string { return fmt.Sprintf("[%s]:%d", s.Host, s.Port) }
	key := func(k ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))) }

	tests := []struct {
		name      string
		hostKeys  []ssh.Signer
		known     func(s *testServer) []string
		alias     string
		wantClass Class
		wantMsg   []string
	}{
		{
			name:  "plain [host]:port entry",
			known: func(s *testServer) []string { return []string{line(s, ed)} },
		},
		{
			name: "hashed entry",
			known: func(s *testServer) []string {
				return []string{xknownhosts.HashHostname(hostPort(s)) + " " + key(ed)}
			},
		},
		{
			name: "entry among others, with comments",
			known: func(s *testServer) []string {
				return []string{"# comment", "other.example " + key(newEd25519(t)), "", line(s, ed), "garbage line"}
			},
		},
		{
			name:     "only the ed25519 key of a server with three (golang/go#29286)",
			hostKeys: []ssh.Signer{ec, rs, ed},
			known:    func(s *testServer) []string { return []string{line(s, ed)} },
		},
		{
			name:     "only the rsa key of a server with three",
			hostKeys: []ssh.Signer{ed, ec, rs},
			known:    func(s *testServer) []string { return []string{line(s, rs)} },
		},
		{
			name:     "host certificate and @cert-authority",
			hostKeys: []ssh.Signer{certSigner},
			known: func(s *testServer) []string {
				return []string{"@cert-authority " + hostPort(s) + " " + key(hostCA)}
			},
		},
		{
			name:     "@cert-authority with a wildcard pattern",
			hostKeys: []ssh.Signer{certSigner},
			known: func(s *testServer) []string {
				return []string{"@cert-authority 127.0.0.* " + key(hostCA)}
			},
		},
		{
			name:  "HostKeyAlias",
			alias: "web1.example",
			known: func(s *testServer) []string { return []string{"web1.example " + key(ed)} },
		},
		{
			name:      "no entry",
			known:     func(s *testServer) []string { return []string{"other.example " + key(ed)} },
			wantClass: ClassHostKeyUnknown,
			wantMsg:   []string{"is unknown", ssh.FingerprintSHA256(ed.PublicKey()), "known_hosts"},
		},
		{
			name:      "entry for port 22 only",
			known:     func(s *testServer) []string { return []string{s.Host + " " + key(ed)} },
			wantClass: ClassHostKeyUnknown,
		},
		{
			name:      "alias not in known_hosts",
			alias:     "web2.example",
			known:     func(s *testServer) []string { return []string{line(s, ed)} },
			wantClass: ClassHostKeyUnknown,
			wantMsg:   []string{"host key of web2.example is unknown"},
		},
		{
			name:      "changed key",
			known:     func(s *testServer) []string { return []string{line(s, newEd25519(t))} },
			wantClass: ClassHostKeyChanged,
			wantMsg:   []string{"does not match", ssh.FingerprintSHA256(ed.PublicKey()), "known_hosts:1"},
		},
		{
			name:      "known type missing on the server",
			hostKeys:  []ssh.Signer{ed},
			known:     func(s *testServer) []string { return []string{line(s, ec)} },
			wantClass: ClassHostKeyChanged,
			wantMsg:   []string{"ecdsa-sha2-nistp256 at"},
		},
		{
			name: "revoked key",
			known: func(s *testServer) []string {
				return []string{line(s, ed), "@revoked * " + key(ed)}
			},
			wantClass: ClassHostKeyChanged,
			wantMsg:   []string{"revoked"},
		},
		{
			name:     "host certificate from another CA",
			hostKeys: []ssh.Signer{certSigner},
			known: func(s *testServer) []string {
				return []string{"@cert-authority " + hostPort(s) + " " + key(otherCA)}
			},
			wantClass: ClassHostCertCA,
			wantMsg:   []string{"signed by CA " + ssh.FingerprintSHA256(hostCA.PublicKey()), "which no @cert-authority line for 127.0.0.1 trusts"},
		},
		{
			name:      "expired host certificate",
			hostKeys:  []ssh.Signer{expired},
			known:     func(s *testServer) []string { return []string{"@cert-authority * " + key(hostCA)} },
			wantClass: ClassHostCertTime,
			wantMsg:   []string{"host certificate of [127.0.0.1]:", "expired at"},
		},
		{
			name:      "host certificate not valid yet",
			hostKeys:  []ssh.Signer{notYet},
			known:     func(s *testServer) []string { return []string{"@cert-authority * " + key(hostCA)} },
			wantClass: ClassHostCertTime,
			wantMsg:   []string{"is not valid until"},
		},
		{
			name:      "host certificate for another host",
			hostKeys:  []ssh.Signer{otherHost},
			known:     func(s *testServer) []string { return []string{"@cert-authority * " + key(hostCA)} },
			wantClass: ClassHostCertHost,
			wantMsg:   []string{`names "web2", "web2.example", not 127.0.0.1`},
		},
		{
			name:      "HostKeyAlias is the name a host certificate must carry",
			hostKeys:  []ssh.Signer{certSigner},
			alias:     "web1",
			known:     func(s *testServer) []string { return []string{"@cert-authority * " + key(hostCA)} },
			wantClass: ClassHostCertHost,
			wantMsg:   []string{`names "127.0.0.1", not web1`},
		},
		{
			name:     "host certificate whose key is @revoked",
			hostKeys: []ssh.Signer{certSigner},
			known: func(s *testServer) []string {
				return []string{"@cert-authority * " + key(hostCA), "@revoked * " + key(ed)}
			},
			wantClass: ClassHostKeyChanged,
			wantMsg:   []string{"is revoked: its key (ssh-ed25519 ", "@revoked at ", "known_hosts:2"},
		},
		{
			name:     "host certificate whose CA is @revoked",
			hostKeys: []ssh.Signer{certSigner},
			known: func(s *testServer) []string {
				return []string{"@cert-authority * " + key(hostCA), "@revoked * " + key(hostCA)}
			},
			wantClass: ClassHostKeyChanged,
			wantMsg:   []string{"is revoked: its CA (ssh-ed25519 "},
		},
		{
			// A plain key known for the host is used: the server's
			// certificate is not asked for.
			name:     "expired host certificate whose plain key known_hosts holds",
			hostKeys: []ssh.Signer{expired, ed},
			known: func(s *testServer) []string {
				return []string{"@cert-authority * " + key(hostCA), line(s, ed)}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, signer, _ := keyFile(t, t.TempDir(), "id", "")
			if tt.hostKeys == nil {
				tt.hostKeys = []ssh.Signer{ed}
			}
			s := startServer(t, serverConfig{hostKeys: tt.hostKeys, authorized: []ssh.PublicKey{signer.PublicKey()}})
			target := s.target(t, tt.known(s), path)
			target.HostKeyAlias = tt.alias
			c, err := Dial(t.Context(), target, Options{})
			if tt.wantClass == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				if _, err := c.Ping(t.Context()); err != nil {
					t.Errorf("Ping: %v", err)
				}
				return
			}
			e := wantClass(t, err, tt.wantClass, false, tt.wantMsg...)
			if e.HostKey == nil {
				t.Errorf("got no HostKey in the error, want the server's key")
			}
			// Verification fails the key exchange: the server saw no
			// authentication attempt and no session.
			if n := s.AuthAttempts.Load() + s.Sessions.Load(); n != 0 {
				t.Errorf("got %d authentication attempts and sessions at the server, want 0", n)
			}
		})
	}
}

func TestKnownHostsFiles(t *testing.T) {
	path, signer, _ := keyFile(t, t.TempDir(), "id", "")
	s := startServer(t, serverConfig{authorized: []ssh.PublicKey{signer.PublicKey()}})
	dir := t.TempDir()
	user, global := filepath.Join(dir, "user_known_hosts"), filepath.Join(dir, "global_known_hosts")
	writeFile(t, global, s.KnownHostsLine(s.HostKeys[0].PublicKey())+"\n")

	target := s.target(t, nil, path)
	target.KnownHostsFiles = []string{user, global, filepath.Join(dir, "missing")}
	c, err := Dial(t.Context(), target, Options{})
	if err != nil {
		t.Fatalf("Dial with a missing user file and the key in the global one: %v", err)
	}
	c.Close()

	target.KnownHostsFiles = []string{filepath.Join(dir, "missing")}
	_, err = Dial(t.Context(), target, Options{})
	wantClass(t, err, ClassHostKeyUnknown, false, "no known_hosts file exists")

	target.KnownHostsFiles = []string{dir}
	_, err = Dial(t.Context(), target, Options{})
	wantClass(t, err, ClassConfig, false, "not a regular file")

	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "this is not a known_hosts line\n")
	target.KnownHostsFiles = []string{bad}
	_, err = Dial(t.Context(), target, Options{})
	wantClass(t, err, ClassConfig, false)
}

func TestFetchHostKey(t *testing.T) {
	ed, ec := newEd25519(t), newECDSA(t)
	s := startServer(t, serverConfig{hostKeys: []ssh.Signer{ec, ed}})
	path, signer, _ := keyFile(t, t.TempDir(), "id", "")
	target := s.target(t, nil, path)

	got, err := FetchHostKey(t.Context(), target, Options{})
	if err != nil {
		t.Fatalf("FetchHostKey: %v", err)
	}
	if !sameKey(got, ed.PublicKey()) {
		t.Errorf("got a %s key, want the server's ed25519 key", got.Type())
	}
	if n := s.AuthAttempts.Load() + s.Sessions.Load(); n != 0 {
		t.Errorf("got %d authentication attempts and sessions at the server, want 0", n)
	}

	// The line it makes is what Dial then accepts.
	line := KnownHostsLine(target, got)
	if want := fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", s.Port); !strings.HasPrefix(line, want) {
		t.Errorf("KnownHostsLine: got %q, want it to start with %q", line, want)
	}
	s2 := startServer(t, serverConfig{hostKeys: []ssh.Signer{ec, ed}, authorized: []ssh.PublicKey{signer.PublicKey()}})
	target.Port = s2.Port
	writeFile(t, target.KnownHostsFiles[0], KnownHostsLine(target, got)+"\n")
	c, err := Dial(t.Context(), target, Options{})
	if err != nil {
		t.Fatalf("Dial after trusting the fetched key: %v", err)
	}
	c.Close()

	// A known key type is preferred.
	writeFile(t, target.KnownHostsFiles[0], KnownHostsLine(target, ec.PublicKey())+"\n")
	got, err = FetchHostKey(t.Context(), target, Options{})
	if err != nil || !sameKey(got, ec.PublicKey()) {
		t.Errorf("FetchHostKey with an ecdsa entry: got %v, %v, want the ecdsa key", got, err)
	}
}

func TestKnownHostsLine(t *testing.T) {
	k := newEd25519(t).PublicKey()
	b64 := strings.Fields(string(ssh.MarshalAuthorizedKey(k)))[1]
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{"port 22", Target{HostName: "web1.example", Port: 22}, "web1.example ssh-ed25519 " + b64},
		{"default port", Target{HostName: "192.0.2.1"}, "192.0.2.1 ssh-ed25519 " + b64},
		{"other port", Target{HostName: "web1.example", Port: 2222}, "[web1.example]:2222 ssh-ed25519 " + b64},
		{"ipv6", Target{HostName: "2001:db8::1", Port: 2222}, "[2001:db8::1]:2222 ssh-ed25519 " + b64},
		{"alias", Target{HostName: "web1.example", Port: 2222, HostKeyAlias: "web1"}, "web1 ssh-ed25519 " + b64},
	}
	for _, tt := range tests {
		if got := KnownHostsLine(tt.target, k); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	// Held, never listening: refused, and no other socket can take it.
	port, err := sshdtest.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	target := Target{Name: "srv", HostName: "127.0.0.1", Port: port.Number, User: "u"}
	_, err = Dial(t.Context(), target, Options{})
	wantClass(t, err, ClassUnreachable, true, "cannot connect to 127.0.0.1:", "refused")
}

// silentListener accepts connections and then does what act says with
// each.
func silentListener(t *testing.T, act func(net.Conn)) Target {
	t.Helper()
	ln := listen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				act(c)
			}()
		}
	}()
	host, port := splitAddr(t, ln.Addr())
	return Target{Name: "srv", HostName: host, Port: port, User: "u"}
}

func TestHandshakeTimeout(t *testing.T) {
	target := silentListener(t, func(net.Conn) {})
	_, err := Dial(t.Context(), target, Options{HandshakeTimeout: 200 * time.Millisecond})
	wantClass(t, err, ClassTimeout, true, "no SSH handshake with 127.0.0.1:", "within 200ms")

	_, err = FetchHostKey(t.Context(), target, Options{HandshakeTimeout: 200 * time.Millisecond})
	wantClass(t, err, ClassTimeout, true)
}

func TestHandshakeContextDeadline(t *testing.T) {
	target := silentListener(t, func(net.Conn) {})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, target, Options{})
	e := wantClass(t, err, ClassTimeout, true)
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("got %v, want it to wrap a deadline error", err)
	}
}

func TestHandshakeClosed(t *testing.T) {
	tests := []struct {
		name string
		act  func(net.Conn)
	}{
		{"closed at once", func(c net.Conn) { c.Close() }},
		{"closed after the version", func(c net.Conn) {
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Read(make([]byte, 64))
			c.Close()
		}},
		{"reset", func(c net.Conn) {
			c.(*net.TCPConn).SetLinger(0)
			c.Read(make([]byte, 64))
			c.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := silentListener(t, tt.act)
			_, err := Dial(t.Context(), target, Options{})
			wantClass(t, err, ClassUnreachable, true, "closed during the SSH handshake")
		})
	}
}

func TestTargetChecked(t *testing.T) {
	tests := []struct {
		name   string
		target Target
	}{
		{"no host", Target{User: "u"}},
		{"no user", Target{HostName: "h"}},
		{"port", Target{HostName: "h", User: "u", Port: 70000}},
		{"space in host", Target{HostName: "h h", User: "u"}},
		{"pattern in host", Target{HostName: "h*", User: "u"}},
		{"control in user", Target{HostName: "h", User: "u\n"}},
		{"alias", Target{HostName: "h", User: "u", HostKeyAlias: "a,b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.target.Name = "srv"
			_, err := Dial(t.Context(), tt.target, Options{})
			wantClass(t, err, ClassConfig, false)
			_, err = FetchHostKey(t.Context(), tt.target, Options{})
			wantClass(t, err, ClassConfig, false)
		})
	}
}
