package sshpush

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// This file holds an in-process SSH server that plays a banpush receiver,
// and helpers to make keys, certificates, known_hosts files and agents.

// reply is what the test server's handler answers to one request.
type reply struct {
	stdout, stderr string
	status         int
	signal         string // sent as exit-signal instead of exit-status
	hang           bool   // never answer
}

// receiver answers like a banpush receiver named "srv".
func receiver(cmd string, stdin []byte) reply {
	switch cmd {
	case "banpush-v1 ping":
		return reply{stdout: "banpush-v1 ok peer=srv version=test\n"}
	case "banpush-v1 ban":
		n := bytes.Count(stdin, []byte("\n"))
		return reply{stdout: fmt.Sprintf("banpush-v1 ok accepted=%d refused=0\n", n)}
	}
	return reply{stderr: "banpush: error: unknown request\n", status: 64}
}

type serverConfig struct {
	hostKeys   []ssh.Signer    // default: one new ed25519 key
	authorized []ssh.PublicKey // keys accepted for any user
	userCA     ssh.PublicKey   // accept user certificates signed by this CA
	handler    func(cmd string, stdin []byte) reply
	stall      bool // accept the request, then never read stdin nor answer
}

type testServer struct {
	Host     string
	Port     int
	HostKeys []ssh.Signer

	authAttempts atomic.Int64 // public keys offered, queries included
	sessions     atomic.Int64 // session channels opened
	lastStdin    atomic.Value // []byte

	ln      net.Listener
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	handler func(cmd string, stdin []byte) reply
	stall   bool
}

// startServer starts an SSH server on 127.0.0.1 that runs cfg.handler for
// every exec request. It stops when the test ends.
func startServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	if len(cfg.hostKeys) == 0 {
		cfg.hostKeys = []ssh.Signer{newEd25519(t)}
	}
	if cfg.handler == nil {
		cfg.handler = receiver
	}
	s := &testServer{HostKeys: cfg.hostKeys, done: make(chan struct{}), handler: cfg.handler, stall: cfg.stall}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool { return sameKey(auth, cfg.userCA) },
		UserKeyFallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range cfg.authorized {
				if sameKey(k, key) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.authAttempts.Add(1)
			return checker.Authenticate(c, key)
		},
	}
	for _, k := range cfg.hostKeys {
		sc.AddHostKey(k)
	}
	s.ln = listen(t)
	s.Host, s.Port = splitAddr(t, s.ln.Addr())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, sc)
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
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

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
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
		s.sessions.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(ch, chReqs)
		}()
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
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
		if s.stall {
			<-s.done
			return
		}
		stdin, _ := io.ReadAll(ch)
		s.lastStdin.Store(stdin)
		r := s.handler(exec.Command, stdin)
		if r.hang {
			<-s.done
			return
		}
		io.WriteString(ch, r.stdout)
		io.WriteString(ch.Stderr(), r.stderr)
		if r.signal != "" {
			ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: r.signal}))
			return
		}
		var status [4]byte
		binary.BigEndian.PutUint32(status[:], uint32(r.status))
		ch.SendRequest("exit-status", false, status[:])
		return
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func splitAddr(t testing.TB, a net.Addr) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// knownHostsLine is the plain known_hosts line for the server's key k.
func (s *testServer) knownHostsLine(k ssh.PublicKey) string {
	return fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
}

// target is a Target for the server with the given key files and
// known_hosts lines (written to a file in a new directory).
func (s *testServer) target(t testing.TB, knownHosts []string, keyFiles ...string) Target {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, strings.Join(knownHosts, "\n")+"\n")
	return Target{
		Name:            "srv",
		HostName:        s.Host,
		Port:            s.Port,
		User:            "banpush",
		IdentityFiles:   keyFiles,
		IdentitiesOnly:  true,
		KnownHostsFiles: []string{kh},
		ConnectTimeout:  5 * time.Second,
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newEd25519(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newECDSA(t testing.TB) ssh.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRSA returns an RSA signer; the key is made once per test binary
// because RSA key generation is slow.
func newRSA(t testing.TB) ssh.Signer {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	s, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyFile writes a new ed25519 private key (encrypted with passphrase
// when it is not empty) and its .pub, and returns the path, the signer
// and the raw key.
func keyFile(t testing.TB, dir, name, passphrase string) (string, ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, string(pem.EncodeToMemory(block)))
	writeFile(t, path+".pub", string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	return path, signer, priv
}

// signCert signs a certificate for key with ca.
func signCert(t testing.TB, ca ssh.Signer, key ssh.PublicKey, typ uint32, principals ...string) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key:             key,
		CertType:        typ,
		KeyId:           "test",
		ValidPrincipals: principals,
		ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()),
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// startAgent serves a keyring holding keys on a unix socket and returns
// the socket's path.
func startAgent(t testing.TB, keys ...any) string {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				agent.ServeAgent(kr, c)
			}()
		}
	}()
	return path
}

// dial dials t and fails the test on error.
func dial(t testing.TB, target Target, o Options) *Client {
	t.Helper()
	c, err := Dial(t.Context(), target, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
