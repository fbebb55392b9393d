package sshpush

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/fakepeer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// This file adapts the in-process peer of package fakepeer to these tests,
// and holds helpers to make keys, certificates, known_hosts files and
// agents.

// reply is what the test server's handler answers to one request.
type reply struct {
	stdout, stderr string
	status         int
	signal         string // sent as exit-signal instead of exit-status
	hang           bool   // never answer
}

type serverConfig struct {
	hostKeys   []ssh.Signer    // default: one new ed25519 key
	authorized []ssh.PublicKey // keys accepted for any user
	userCA     ssh.PublicKey   // accept user certificates signed by this CA
	handler    func(cmd string, stdin []byte) reply
	stall      bool // accept the request, then never read stdin nor answer
}

// testServer is a fakepeer.Server answering like a banpush receiver named
// "srv" (fakepeer.Answering), or as serverConfig.handler says.
type testServer struct {
	*fakepeer.Server
}

// startServer starts an in-process SSH server on 127.0.0.1. It stops when
// the test ends.
func startServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	fc := fakepeer.Config{HostKeys: cfg.hostKeys, Authorized: cfg.authorized, UserCA: cfg.userCA}
	switch {
	case cfg.stall:
		fc.Handler = fakepeer.Stall()
	case cfg.handler != nil:
		fc.Handler = fakepeer.Replies(func(cmd string, stdin []byte) fakepeer.Reply {
			r := cfg.handler(cmd, stdin)
			return fakepeer.Reply{Stdout: r.stdout, Stderr: r.stderr, Exit: fakepeer.Exit{Status: r.status, Signal: r.signal, Hang: r.hang}}
		})
	}
	return &testServer{fakepeer.Start(t, fc)}
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

func newEd25519(t testing.TB) ssh.Signer { return fakepeer.NewSigner(t) }

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
