package sshpush

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"golang.org/x/crypto/ssh"
)

// These tests run against the real OpenSSH sshd (package sshdtest). The
// receiver is a small script run as a forced command, so that they test
// the SSH layer alone.

const fakeReceiver = `#!/bin/sh
case "$SSH_ORIGINAL_COMMAND" in
"banpush-v1 ping") echo "banpush-v1 ok peer=real version=test" ;;
"banpush-v1 ban") n=$(wc -l | tr -d ' '); echo "banpush-v1 ok accepted=$n refused=0" ;;
*) echo "banpush: error: unknown request" >&2; exit 64 ;;
esac
`

// receiverScript writes fakeReceiver to dir and returns its path.
func receiverScript(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "receiver.sh")
	if err := os.WriteFile(path, []byte(fakeReceiver), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// forced is an authorized_keys line running script for the key at pubPath.
func forced(t *testing.T, script, pubPath string) string {
	t.Helper()
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("command=%q,restrict %s", script, pub)
}

// sshdTarget is a Target for s with the given known_hosts content and keys.
func sshdTarget(t *testing.T, s *sshdtest.Server, knownHosts string, keys ...string) Target {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, knownHosts)
	return Target{
		Name:            "srv",
		HostName:        s.Host,
		Port:            s.Port,
		User:            s.User,
		IdentityFiles:   keys,
		IdentitiesOnly:  true,
		KnownHostsFiles: []string{kh},
	}
}

// pingAndBan checks a full exchange with the fake receiver.
func pingAndBan(t *testing.T, target Target, o Options) {
	t.Helper()
	c, err := Dial(t.Context(), target, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	p, err := c.Ping(t.Context())
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if p.Peer != "real" || p.Version != "test" {
		t.Errorf("Ping: got %+v, want peer real, version test", p)
	}
	ack, err := c.Ban(t.Context(), []byte("203.0.113.1\n203.0.113.2\n203.0.113.3\n"))
	if err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if ack.Accepted != 3 || ack.Refused != 0 {
		t.Errorf("Ban: got %+v, want accepted 3, refused 0", ack)
	}
}

func TestSSHDKey(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	script := receiverScript(t, dir)
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "")

	rsaPath := filepath.Join(dir, "id_rsa")
	block, err := ssh.MarshalPrivateKey(rsaKeyFor(t), "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, rsaPath, string(pem.EncodeToMemory(block)))
	writeFile(t, rsaPath+".pub", string(ssh.MarshalAuthorizedKey(newRSA(t).PublicKey())))

	s := sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: forced(t, script, pub) + forced(t, script, rsaPath+".pub")})
	t.Run("ed25519", func(t *testing.T) {
		pingAndBan(t, sshdTarget(t, s, s.KnownHostsLines(), filepath.Join(dir, "missing"), key), Options{})
	})
	// OpenSSH 8.8 and later refuse ssh-rsa (SHA-1) signatures.
	t.Run("rsa-sha2", func(t *testing.T) {
		pingAndBan(t, sshdTarget(t, s, s.KnownHostsLines(), rsaPath), Options{})
	})
	t.Run("wrong key", func(t *testing.T) {
		other, _, _ := sshdtest.NewKey(t, t.TempDir(), "other", "")
		_, err := Dial(t.Context(), sshdTarget(t, s, s.KnownHostsLines(), other), Options{})
		wantClass(t, err, ClassAuth, false, "offered "+other)
	})
	t.Run("stopped", func(t *testing.T) {
		target := sshdTarget(t, s, s.KnownHostsLines(), key)
		s.Stop()
		defer s.Start()
		_, err := Dial(t.Context(), target, Options{})
		wantClass(t, err, ClassUnreachable, true)
	})
}

func TestSSHDAgent(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	script := receiverScript(t, dir)
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "passphrase")
	s := sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: forced(t, script, pub)})

	// The key file is encrypted: without an agent it is skipped.
	var w warnings
	_, err := Dial(t.Context(), sshdTarget(t, s, s.KnownHostsLines(), key), Options{Warn: w.warn})
	wantClass(t, err, ClassAuth, false)
	if got := w.get(); len(got) != 1 || !strings.Contains(got[0], "is encrypted and no agent is available") {
		t.Errorf("got warnings %q, want one about the encrypted key", got)
	}

	// With the agent holding it, the agent signs.
	priv, err := ssh.ParseRawPrivateKeyWithPassphrase(mustRead(t, key), []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	target := sshdTarget(t, s, s.KnownHostsLines(), key)
	target.IdentityAgent = startAgent(t, priv)
	pingAndBan(t, target, Options{})

	// An agent key alone, without IdentityFiles.
	target.IdentityFiles, target.IdentitiesOnly = nil, false
	pingAndBan(t, target, Options{})
}

func TestSSHDUserCertificate(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	script := receiverScript(t, dir)
	caPriv, caPub, _ := sshdtest.NewKey(t, dir, "user_ca", "")
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "")

	// The certificate is for another user first: refused.
	s := sshdtest.Start(t, sshdtest.Config{Extra: []string{
		"TrustedUserCAKeys " + caPub,
		"ForceCommand " + script,
	}})
	certPath := sshdtest.SignUserCert(t, caPriv, pub, "someone-else")
	_, err := Dial(t.Context(), sshdTarget(t, s, s.KnownHostsLines(), key), Options{})
	wantClass(t, err, ClassAuth, false)

	// For the login user, beside the key (PATH-cert.pub).
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	certPath = sshdtest.SignUserCert(t, caPriv, pub, s.User)
	if certPath != key+"-cert.pub" {
		t.Fatalf("got certificate %s, want %s", certPath, key+"-cert.pub")
	}
	pingAndBan(t, sshdTarget(t, s, s.KnownHostsLines(), key), Options{})

	// Moved elsewhere and named by CertificateFiles.
	moved := filepath.Join(t.TempDir(), "cert.pub")
	if err := os.Rename(certPath, moved); err != nil {
		t.Fatal(err)
	}
	target := sshdTarget(t, s, s.KnownHostsLines(), key)
	target.CertificateFiles = []string{moved}
	pingAndBan(t, target, Options{})
}

func TestSSHDHostKeys(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	script := receiverScript(t, dir)
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "")
	// The server has three host keys; OpenSSH would offer ed25519 last
	// in x/crypto's default order.
	s := sshdtest.Start(t, sshdtest.Config{
		AuthorizedKeys: forced(t, script, pub),
		HostKeyTypes:   []string{"rsa", "ecdsa", "ed25519"},
	})
	hostPort := fmt.Sprintf("[%s]:%d", s.Host, s.Port)
	line := func(k ssh.PublicKey) string {
		return hostPort + " " + string(ssh.MarshalAuthorizedKey(k))
	}
	rsaKey, ecKey, edKey := s.HostKeys[0], s.HostKeys[1], s.HostKeys[2]

	for _, tt := range []struct {
		name string
		key  ssh.PublicKey
	}{{"only ed25519 (golang/go#29286)", edKey}, {"only ecdsa", ecKey}, {"only rsa", rsaKey}} {
		t.Run(tt.name, func(t *testing.T) {
			pingAndBan(t, sshdTarget(t, s, line(tt.key), key), Options{})
		})
	}

	t.Run("hashed by ssh-keygen -H", func(t *testing.T) {
		target := sshdTarget(t, s, line(edKey), key)
		out, err := exec.Command("ssh-keygen", "-H", "-f", target.KnownHostsFiles[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -H: %v\n%s", err, out)
		}
		if b := mustRead(t, target.KnownHostsFiles[0]); !strings.HasPrefix(string(b), "|1|") {
			t.Fatalf("got known_hosts %q, want a hashed entry", b)
		}
		pingAndBan(t, target, Options{})
	})

	t.Run("unknown", func(t *testing.T) {
		_, err := Dial(t.Context(), sshdTarget(t, s, "", key), Options{})
		wantClass(t, err, ClassHostKeyUnknown, false, ssh.FingerprintSHA256(edKey))
	})

	t.Run("changed", func(t *testing.T) {
		other := newEd25519(t).PublicKey()
		since := len(s.Log())
		_, err := Dial(t.Context(), sshdTarget(t, s, line(other), key), Options{})
		wantClass(t, err, ClassHostKeyChanged, false, ssh.FingerprintSHA256(edKey))
		if log := s.Log()[since:]; strings.Contains(log, "Accepted") || strings.Contains(log, "publickey") {
			t.Errorf("sshd saw an authentication attempt from a client that refused its host key:\n%s", log)
		}
	})

	t.Run("fetch and trust", func(t *testing.T) {
		target := sshdTarget(t, s, "", key)
		got, err := FetchHostKey(t.Context(), target, Options{})
		if err != nil {
			t.Fatalf("FetchHostKey: %v", err)
		}
		if !sameKey(got, edKey) {
			t.Errorf("FetchHostKey: got a %s key, want the ed25519 one", got.Type())
		}
		// ssh(1) accepts the line too.
		writeFile(t, target.KnownHostsFiles[0], KnownHostsLine(target, got)+"\n")
		args := append(s.ClientOptions(key, target.KnownHostsFiles[0]), s.Host, "banpush-v1 ping")
		if out, err := exec.Command("ssh", args...).CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "banpush-v1 ok") {
			t.Errorf("ssh with the trusted line: %v\n%s", err, out)
		}
		pingAndBan(t, target, Options{})
	})
}

func TestSSHDNotBanpush(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "")
	// No forced command: the key opens the account's shell.
	s := sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: string(mustRead(t, pub))})
	c, err := Dial(t.Context(), sshdTarget(t, s, s.KnownHostsLines(), key), Options{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	_, err = c.Ping(t.Context())
	e := wantClass(t, err, ClassNotBanpush, false, "exit 127")
	if !strings.Contains(e.Stderr, "banpush-v1") {
		t.Errorf("got Stderr %q, want the shell's complaint", e.Stderr)
	}
	var ee *Error
	if !errors.As(err, &ee) || ee.ExitStatus != 127 {
		t.Errorf("got %v, want exit status 127", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Past MaxStartups, sshd drops new connections before the handshake. The
// client must see a retryable error, as it is when many hosts push to one
// peer at once.
func TestSSHDMaxStartups(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	script := receiverScript(t, dir)
	key, pub, _ := sshdtest.NewKey(t, dir, "id_ed25519", "")
	s := sshdtest.Start(t, sshdtest.Config{
		AuthorizedKeys: forced(t, script, pub),
		Extra:          []string{"MaxStartups 1"},
	})
	// One unauthenticated connection takes the only slot.
	since := len(s.Log())
	hold, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	s.WaitLog(since, "Connection from", 10*time.Second)

	target := sshdTarget(t, s, s.KnownHostsLines(), key)
	_, err = Dial(t.Context(), target, Options{})
	wantClass(t, err, ClassUnreachable, true, "closed during the SSH handshake")

	// Once the slot is free again, the same Target works. sshd frees it
	// a moment after logging the close: retry, as a sender would.
	_, holdPort := splitAddr(t, hold.LocalAddr())
	since = len(s.Log())
	hold.Close()
	s.WaitLog(since, fmt.Sprintf("port %d", holdPort), 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := Dial(t.Context(), target, Options{})
		if err == nil {
			defer c.Close()
			if _, err := c.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
			break
		}
		if !err.(*Error).Retryable() || time.Now().After(deadline) {
			t.Fatalf("Dial after the slot was freed: %v", err)
		}
	}
}
