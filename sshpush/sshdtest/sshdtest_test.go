package sshdtest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// runSSH runs the OpenSSH client with args and returns its stdout, stderr
// and error.
func runSSH(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ssh", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestKeyLoginWithOpenSSH(t *testing.T) {
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "id_ed25519", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{
		AuthorizedKeys: string(pubText),
		HostKeyTypes:   []string{"ed25519", "ecdsa", "rsa"},
	})
	if got := len(strings.Split(strings.TrimSpace(s.KnownHostsLines()), "\n")); got != 3 {
		t.Errorf("got %d known_hosts lines, want 3", got)
	}
	out, stderr, err := runSSH(t, append(s.SSHArgs(key, ""), "echo", "hi")...)
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out != "hi\n" {
		t.Errorf("got output %q, want %q", out, "hi\n")
	}
	if got := s.Connections(); got != 1 {
		t.Errorf("got %d connections, want 1", got)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "good", "")
	other, _, _ := NewKey(t, dir, "other", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{AuthorizedKeys: string(pubText)})
	wrongHosts := filepath.Join(dir, "wrong_known_hosts")
	_, _, otherHost := NewKey(t, dir, "otherhost", "")
	line := "[127.0.0.1]:" + strings.TrimPrefix(s.Addr(), "127.0.0.1:") + " " + string(ssh.MarshalAuthorizedKey(otherHost.PublicKey()))
	if err := os.WriteFile(wrongHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		key        string
		knownHosts string
		wantStderr string
	}{
		{"unauthorized key", other, "", "Permission denied"},
		{"wrong host key", key, wrongHosts, "HOST IDENTIFICATION HAS CHANGED"},
		{"unknown host", key, "/dev/null", "Host key verification failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := runSSH(t, append(s.SSHArgs(tt.key, tt.knownHosts), "echo", "hi")...)
			if err == nil {
				t.Fatalf("ssh succeeded with output %q, want failure", out)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestRestartKeepsPortAndKeys(t *testing.T) {
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "id", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{AuthorizedKeys: string(pubText)})
	known := s.KnownHostsFile()
	port := s.Port

	// A connection that is open when the server stops is closed.
	held := exec.Command("ssh", append(s.SSHArgs(key, known), "cat")...)
	stdin, err := held.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(0, "Starting session: command", 10*time.Second)

	s.Stop()
	if err := held.Wait(); err == nil {
		t.Errorf("ssh held across Stop exited 0, want an error")
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Fatalf("port %d accepts connections after Stop", port)
	}
	if _, _, err := runSSH(t, append(s.SSHArgs(key, known), "true")...); err == nil {
		t.Fatalf("ssh succeeded while the server is stopped")
	}

	s.Start()
	if s.Port != port {
		t.Errorf("got port %d after Start, want %d", s.Port, port)
	}
	s.Restart()
	// The same known_hosts file still matches: the host key is kept.
	if out, stderr, err := runSSH(t, append(s.SSHArgs(key, known), "echo", "back")...); err != nil || out != "back\n" {
		t.Fatalf("ssh after Restart: got %q, %v, want %q\n%s", out, err, "back\n", stderr)
	}
	if got := s.Connections(); got != 2 {
		t.Errorf("got %d connections, want 2 (one held, one after Restart)", got)
	}
}

func TestSetAuthorizedKeys(t *testing.T) {
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "id", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{})
	if _, _, err := runSSH(t, append(s.SSHArgs(key, ""), "true")...); err == nil {
		t.Fatalf("ssh succeeded with an empty authorized_keys")
	}
	s.SetAuthorizedKeys(`command="echo forced" ` + string(pubText))
	out, stderr, err := runSSH(t, append(s.SSHArgs(key, ""), "echo", "asked")...)
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out != "forced\n" {
		t.Errorf("got output %q, want %q", out, "forced\n")
	}
}

func TestCertificateLogin(t *testing.T) {
	dir := t.TempDir()
	ca, _, _ := NewKey(t, dir, "ca", "")
	key, pub, _ := NewKey(t, dir, "id", "")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	cert := SignUserCert(t, ca, pub, u.Username)
	if _, err := os.Stat(cert); err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{Extra: []string{"TrustedUserCAKeys " + ca + ".pub"}})
	// No authorized_keys line: only the certificate can log in.
	out, stderr, err := runSSH(t, append(s.SSHArgs(key, ""), "echo", "cert")...)
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out != "cert\n" {
		t.Errorf("got output %q, want %q", out, "cert\n")
	}
	if !strings.Contains(s.Log(), "Accepted publickey") || !strings.Contains(s.Log(), "CERT") {
		t.Errorf("sshd log does not show a certificate login:\n%s", s.Log())
	}
}

func TestEncryptedKey(t *testing.T) {
	dir := t.TempDir()
	key, _, signer := NewKey(t, dir, "id", "secret")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	var missing *ssh.PassphraseMissingError
	if _, err := ssh.ParsePrivateKey(data); !errors.As(err, &missing) {
		t.Fatalf("parsing the encrypted key: got %v, want PassphraseMissingError", err)
	}
	parsed, err := ssh.ParsePrivateKeyWithPassphrase(data, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parsed.PublicKey().Marshal(), signer.PublicKey().Marshal()) {
		t.Errorf("decrypted key does not match the signer")
	}
}

func TestExtraMatchGoesLast(t *testing.T) {
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "id", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Config{
		AuthorizedKeys: string(pubText),
		Extra:          []string{"Match Address 127.0.0.1", "ForceCommand echo matched"},
	})
	out, stderr, err := runSSH(t, append(s.SSHArgs(key, ""), "echo", "asked")...)
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out != "matched\n" {
		t.Errorf("got output %q, want %q", out, "matched\n")
	}
}
