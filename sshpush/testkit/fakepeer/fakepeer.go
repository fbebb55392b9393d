// Package fakepeer is an in-process SSH server on 127.0.0.1 that plays a
// banpush peer, for the fast tests of the client (package sshpush), the
// delivery engine and the sender: a real x/crypto/ssh server, real keys and
// known_hosts, and either the real receiver (package receive, writing a log
// in a temporary directory) or scripted answers.
//
// It answers exec requests only, the way sshd runs a forced command: the
// requested command is handed to a Handler with the session's stdin,
// stdout and stderr, and the Handler's Exit becomes the exit-status or
// exit-signal. Tests that must cross the real OpenSSH sshd use package
// sshdtest instead.
//
// It is for tests only: it trusts its caller, reports failures through
// testing.TB and stops, with every goroutine it started, when the test
// ends.
package fakepeer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

// Config is what a test chooses about its peer.
type Config struct {
	// HostKeys are the server's host keys; default one new ed25519 key.
	HostKeys []ssh.Signer
	// Authorized are the client keys accepted, for any user.
	Authorized []ssh.PublicKey
	// UserCA, when set, accepts user certificates it signed.
	UserCA ssh.PublicKey
	// Handler runs every exec request; nil means Replies(Answering("srv")).
	Handler Handler
}

// Exec is one exec request.
type Exec struct {
	Command string    // what the client asked to run (SSH_ORIGINAL_COMMAND)
	Stdin   io.Reader // the session's input, up to the client's EOF
	Stdout  io.Writer
	Stderr  io.Writer
	// Stop is closed when the server stops: a handler that waits must
	// give up then.
	Stop <-chan struct{}

	srv *Server
}

// Exit is how a request ends.
type Exit struct {
	Status int    // sent as exit-status
	Signal string // when set, sent as exit-signal instead ("KILL", ...)
	Hang   bool   // send nothing and keep the session open until Stop
}

// Handler runs one exec request.
type Handler func(e *Exec) Exit

// Server is a running fake peer. Its counters may be read at any time.
type Server struct {
	Host     string // 127.0.0.1
	Port     int
	HostKeys []ssh.Signer

	AuthAttempts atomic.Int64 // public keys offered, queries included
	Conns        atomic.Int64 // TCP connections accepted
	Sessions     atomic.Int64 // session channels opened

	running atomic.Int64 // handlers running now

	handler   Handler
	lastStdin atomic.Value // []byte, set by Replies
	ln        net.Listener
	done      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     []net.Conn
}

// WaitIdle waits until no request is being handled, for at most timeout,
// and reports whether none is: a client that gave up on a request (its
// context ended) leaves it running on the server, as on a real peer.
func (s *Server) WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.running.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Start starts a peer on a free 127.0.0.1 port. It stops when the test
// ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if len(cfg.HostKeys) == 0 {
		cfg.HostKeys = []ssh.Signer{NewSigner(t)}
	}
	if cfg.Handler == nil {
		cfg.Handler = Replies(Answering("srv"))
	}
	s := &Server{HostKeys: cfg.HostKeys, handler: cfg.Handler, done: make(chan struct{})}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool { return SameKey(auth, cfg.UserCA) },
		UserKeyFallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range cfg.Authorized {
				if SameKey(k, key) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.AuthAttempts.Add(1)
			return checker.Authenticate(c, key)
		},
	}
	for _, k := range cfg.HostKeys {
		sc.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	s.ln = ln
	s.Host, s.Port = "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
	s.wg.Add(1)
	go s.accept(sc)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) accept(sc *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.Conns.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c, sc)
		}()
	}
}

// Stop closes the listener and every connection, and waits for every
// handler to return. Later calls do nothing.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.Sessions.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(ch, chReqs)
		}()
	}
}

// session waits for the exec request, runs the handler and sends its exit.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var exec struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &exec); err != nil {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		s.running.Add(1)
		exit := s.handler(&Exec{Command: exec.Command, Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Stop: s.done, srv: s})
		s.running.Add(-1)
		if exit.Hang {
			<-s.done
			return
		}
		if exit.Signal != "" {
			ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: exit.Signal}))
			return
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(exit.Status)))
		return
	}
}

// LastStdin is the whole stdin of the last request a Replies handler
// answered.
func (s *Server) LastStdin() []byte {
	b, _ := s.lastStdin.Load().([]byte)
	return b
}

// KnownHostsLine is the known_hosts line for this server's host key k.
func (s *Server) KnownHostsLine(k ssh.PublicKey) string {
	return "[" + s.Host + "]:" + strconv.Itoa(s.Port) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// KnownHosts is one known_hosts line per host key, each with its newline.
func (s *Server) KnownHosts() string {
	var b strings.Builder
	for _, k := range s.HostKeys {
		b.WriteString(s.KnownHostsLine(k.PublicKey()) + "\n")
	}
	return b.String()
}

// Reply is a scripted answer: what to write, then how to end.
type Reply struct {
	Stdout, Stderr string
	Exit
}

// Replies is a Handler that reads the whole stdin, then answers with what f
// returns for the command and that input (Stall never reads it).
func Replies(f func(cmd string, stdin []byte) Reply) Handler {
	return func(e *Exec) Exit {
		stdin, _ := io.ReadAll(e.Stdin)
		e.srv.lastStdin.Store(stdin)
		r := f(e.Command, stdin)
		if r.Hang {
			return r.Exit
		}
		io.WriteString(e.Stdout, r.Stdout)
		io.WriteString(e.Stderr, r.Stderr)
		return r.Exit
	}
}

// Answering answers like a receiver named peer that accepts every record:
// a ping with version "test", a ban with every line accepted; any other
// request as unknown (wire.ExitRequest).
func Answering(peer string) func(cmd string, stdin []byte) Reply {
	return func(cmd string, stdin []byte) Reply {
		switch req, _ := wire.ParseRequest(cmd); req {
		case wire.Ping:
			line, err := wire.PingAnswer{Peer: peer, Version: "test"}.Marshal()
			if err != nil {
				return Reply{Stderr: "banpush: error: bad peer name\n", Exit: Exit{Status: wire.ExitConfig}}
			}
			return Reply{Stdout: string(line) + "\n"}
		case wire.Ban:
			return Reply{Stdout: wire.Answer{Accepted: wire.CountRecords(stdin)}.String() + "\n"}
		}
		return Reply{Stderr: "banpush: error: " + wire.ErrUnknownRequest.Error() + "\n", Exit: Exit{Status: wire.ExitRequest}}
	}
}

// Stall is a Handler that accepts the request and then neither reads its
// input nor answers until the server stops: a receiver that froze.
func Stall() Handler {
	return func(e *Exec) Exit { return Exit{Hang: true} }
}

// NewSigner makes a new ed25519 signer.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	return s
}

// SameKey reports whether a and b are the same public key.
func SameKey(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
}
