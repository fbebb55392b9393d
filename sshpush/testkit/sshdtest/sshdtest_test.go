package sshdtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
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
	cert := SignUserCert(t, ca, pub, LoginAccount(t).Name)
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

// TestHostCertificate: a server started with HostCertificate presents a
// host certificate that ssh accepts through an @cert-authority line alone,
// for the host the certificate names, and for no other.
func TestHostCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caPub, _ := NewKey(t, dir, "host_ca", "")
	key, pub, _ := NewKey(t, dir, "id", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	var signed []string
	s := Start(t, Config{
		AuthorizedKeys: string(pubText),
		HostCertificate: func(pubPath string) (string, error) {
			signed = append(signed, pubPath)
			return SignCert(ca, pubPath, Cert{Host: true, ID: "h1", Principals: []string{"h1"}})
		},
	})
	if len(signed) != 1 {
		t.Fatalf("HostCertificate called for %v, want one host key", signed)
	}
	caText, err := os.ReadFile(caPub)
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte("@cert-authority * "+string(caText)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alias  string
		wantOK bool
	}{{"h1", true}, {"h2", false}} {
		// HostKeyAlias goes first: OpenSSH keeps the first value.
		out, stderr, err := runSSH(t, append([]string{"-o", "HostKeyAlias=" + tt.alias}, s.SSHArgs(key, known)...)...)
		if ok := err == nil; ok != tt.wantOK {
			t.Errorf("HostKeyAlias %s: got success %v (%q, %v), want %v\n%s", tt.alias, ok, out, err, tt.wantOK, stderr)
		}
	}
}

// TestSignCert: the certificate says what Cert asked for.
func TestSignCert(t *testing.T) {
	dir := t.TempDir()
	ca, _, _ := NewKey(t, dir, "ca", "")
	_, pub, _ := NewKey(t, dir, "id", "")
	tests := []struct {
		name     string
		cert     Cert
		wantType uint32
		wantID   string
		wantPr   []string
		expired  bool
	}{
		{"user", Cert{ID: "h01", Principals: []string{"banpush"}}, ssh.UserCert, "h01", []string{"banpush"}, false},
		{"host, two names", Cert{Host: true, ID: "web", Principals: []string{"web", "web.example.com"}}, ssh.HostCert, "web", []string{"web", "web.example.com"}, false},
		{"odd ID, past", Cert{ID: "a b;c", Validity: "20200101:20200102"}, ssh.UserCert, "a b;c", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, err := SignCert(ca, pub, tt.cert)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			k, _, _, _, err := ssh.ParseAuthorizedKey(b)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := k.(*ssh.Certificate)
			if !ok {
				t.Fatalf("%s holds a %s, want a certificate", path, k.Type())
			}
			if c.CertType != tt.wantType || c.KeyId != tt.wantID || !slices.Equal(c.ValidPrincipals, tt.wantPr) {
				t.Errorf("got type %d, ID %q, principals %q, want %d, %q, %q", c.CertType, c.KeyId, c.ValidPrincipals, tt.wantType, tt.wantID, tt.wantPr)
			}
			if expired := time.Unix(int64(c.ValidBefore), 0).Before(time.Now()); expired != tt.expired {
				t.Errorf("got expired %v, want %v", expired, tt.expired)
			}
		})
	}
	if _, err := SignCert(ca, filepath.Join(dir, "id"), Cert{}); err == nil {
		t.Error("SignCert of a path without .pub succeeded")
	}
}

// TestBindMounted: two servers started with BindMounted on one target each
// see their own directory there, and the machine sees neither.
func TestBindMounted(t *testing.T) {
	testenv.Need(t, testenv.Root("mount namespaces"), testenv.Command("unshare", "util-linux"))
	dir := t.TempDir()
	key, pub, _ := NewKey(t, dir, "id", "")
	pubText, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	common := filepath.Join(dir, "common")
	if err := os.Mkdir(common, 0o755); err != nil {
		t.Fatal(err)
	}
	line := `command="cat ` + common + `/name" ` + string(pubText)
	var cfgs []Config
	for _, name := range []string{"a", "b"} {
		src := filepath.Join(dir, name)
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "name"), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, Config{AuthorizedKeys: line, Exec: BindMounted(src, common)})
	}
	servers := StartMany(t, cfgs...)
	for i, want := range []string{"a\n", "b\n"} {
		s := servers[i]
		out, stderr, err := runSSH(t, s.SSHArgs(key, "")...)
		if err != nil || out != want {
			t.Errorf("server %d: got %q, %v, want %q\n%s", i, out, err, want, stderr)
		}
		// The pid held is sshd's, not the wrapper's.
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.Pid())); exe != SSHD {
			t.Errorf("server %d: pid %d runs %q (%v), want %s", i, s.Pid(), exe, err, SSHD)
		}
	}
	if ents, err := os.ReadDir(common); err != nil || len(ents) != 0 {
		t.Errorf("%s outside the servers: got %d entries, %v, want it empty", common, len(ents), err)
	}
}
