package receive

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

var authNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// testCert returns a certificate of a new key, signed by a new CA, as
// edit leaves it.
func testCert(t testing.TB, edit func(*ssh.Certificate)) *ssh.Certificate {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key: key, KeyId: "web1", CertType: ssh.UserCert,
		ValidPrincipals: []string{"banpush"},
		ValidAfter:      uint64(authNow.Add(-time.Hour).Unix()), ValidBefore: uint64(authNow.Add(time.Hour).Unix()),
	}
	if edit != nil {
		edit(cert)
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return cert
}

// authLine is the line sshd writes for a key that authenticated a session.
func authLine(k ssh.PublicKey) string {
	return "publickey " + strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n") + "\n"
}

func TestPeerFromAuthInfo(t *testing.T) {
	good := authLine(testCert(t, nil))
	plain := authLine(testCert(t, nil).Key)
	tests := []struct {
		name, data, want, problem string
	}{
		{"certificate", good, "web1", ""},
		{"other methods beside it", "keyboard-interactive\n" + good, "web1", ""},
		{"no final newline", strings.TrimSuffix(good, "\n"), "web1", ""},
		{"CRLF", strings.TrimSuffix(good, "\n") + "\r\n", "web1", ""},
		{"forever valid", authLine(testCert(t, func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 0, math.MaxUint64 })), "web1", ""},
		{"empty", "", "", "not authenticated by a key"},
		{"password only", "password\n", "", "not authenticated by a key"},
		{"two keys", good + good, "", "by 2 keys"},
		{"plain key", plain, "", "plain ssh-ed25519 key"},
		{"host certificate", authLine(testCert(t, func(c *ssh.Certificate) { c.CertType = ssh.HostCert })), "", "not a user certificate"},
		{"expired", authLine(testCert(t, func(c *ssh.Certificate) { c.ValidBefore = uint64(authNow.Add(-time.Minute).Unix()) })), "", "not valid now"},
		{"not yet valid", authLine(testCert(t, func(c *ssh.Certificate) { c.ValidAfter = uint64(authNow.Add(time.Minute).Unix()) })), "", "not valid now"},
		{"empty key ID", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "" })), "", "not a peer name"},
		{"key ID with a space", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "web1 --allow-private" })), "", `"web1 --allow-private" of the peer's certificate is not a peer name`},
		{"key ID with a newline", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "web1\nfake=1" })), "", `"web1?fake=1"`},
		{"key ID path", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "../etc" })), "", "not a peer name"},
		{"key ID dot dot", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = ".." })), "", "not a peer name"},
		{"key ID shell", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "a;b" })), "", "not a peer name"},
		{"key ID of 65 characters", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = strings.Repeat("a", 65) })), "", "not a peer name"},
		{"key ID of 1000 characters", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = strings.Repeat("a", 1000) })), "", "aaa...\" of the"},
		{"key ID not ASCII", authLine(testCert(t, func(c *ssh.Certificate) { c.KeyId = "wéb1" })), "", "not a peer name"},
		{"a comment after the key", strings.TrimSuffix(good, "\n") + " root@web1\n", "", "not TYPE BASE64"},
		{"type alone", "publickey ssh-ed25519\n", "", "not TYPE BASE64"},
		{"bad base64", "publickey ssh-ed25519-cert-v01@openssh.com !!!!\n", "", "does not decode"},
		{"type does not match", "publickey ssh-rsa " + strings.Fields(good)[2] + "\n", "", "does not parse"},
		{"garbage blob", "publickey ssh-ed25519 AAAA\n", "", "does not parse"},
		{"too large", good + strings.Repeat("x", MaxAuthInfo), "", "larger than"},
	}
	for _, tt := range tests {
		got, err := PeerFromAuthInfo([]byte(tt.data), authNow)
		if tt.problem == "" {
			if err != nil || got != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
			}
			continue
		}
		var ae *AuthInfoError
		if got != "" || !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("%s: got %q, %v; want an *AuthInfoError about %q", tt.name, got, err, tt.problem)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("%s: message has a line break: %q", tt.name, err)
		}
	}
}

func TestReadAuthInfo(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sshauth.good")
	if err := os.WriteFile(good, []byte("publickey x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadAuthInfo(good); err != nil || string(data) != "publickey x\n" {
		t.Fatalf("ReadAuthInfo = %q, %v", data, err)
	}
	link := filepath.Join(dir, "sshauth.link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "sshauth.open")
	if err := os.WriteFile(open, []byte("publickey x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o622); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(dir, "sshauth.large")
	if err := os.WriteFile(large, make([]byte, MaxAuthInfo+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{"", "SSH_USER_AUTH is not set"},
		{"sshauth.good", "not an absolute path"},
		{filepath.Join(dir, "missing"), "cannot open"},
		{link, "cannot open"},
		{dir, "not a plain file"},
		{open, "writable by others"},
		{large, "larger than"},
	} {
		_, err := ReadAuthInfo(tt.path)
		var ae *AuthInfoError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadAuthInfo(%q) = %v, want an *AuthInfoError about %q", tt.path, err, tt.want)
		}
	}
}

// FuzzPeerFromAuthInfo: whatever the file holds, the result is either a
// valid peer name or an *AuthInfoError of one line.
func FuzzPeerFromAuthInfo(f *testing.F) {
	f.Add([]byte(authLine(testCert(f, nil))))
	f.Add([]byte("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl\n"))
	f.Add([]byte("password\nkeyboard-interactive\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		name, err := PeerFromAuthInfo(data, authNow)
		var ae *AuthInfoError
		switch {
		case err == nil && (name == "" || len(name) > 64 || strings.ContainsAny(name, " \n/;=")):
			t.Fatalf("accepted name %q", name)
		case err != nil && (name != "" || !errors.As(err, &ae) || strings.ContainsAny(err.Error(), "\n\r")):
			t.Fatalf("got %q, %v", name, err)
		}
	})
}
