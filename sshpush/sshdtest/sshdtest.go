// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for integration
// tests, and makes keys and certificates for it.
//
// Each Server has its own temporary directory holding its sshd_config, host
// keys, authorized_keys file, pid file and log. Nothing is read from
// /etc/ssh/sshd_config or from the user's ~/.ssh, on the server side or on
// the client side (see SSHArgs). The login user is the user running the
// test; as root, sshd needs /run/sshd, which Start creates.
//
// The package trusts the test that calls it and the sshd, ssh and
// ssh-keygen binaries installed on the machine. It is for tests only: it
// reads the CI environment variable (Require) and reports failures through
// testing.TB.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the sshd binary the tests run. sshd insists on an absolute path.
const SSHD = "/usr/sbin/sshd"

const installHint = "needs " + SSHD + " and ssh: apt-get install openssh-server openssh-client"

// maxLogShown is how much of the end of sshd's log a failed test shows.
const maxLogShown = 16 << 10

// startTimeout bounds how long Start waits for sshd to listen, and Stop for
// it to exit.
const startTimeout = 20 * time.Second

// Require skips the test when sshd, ssh or ssh-keygen is missing, naming the
// Debian packages to install; when the CI environment variable is set it
// fails the test instead, so that CI cannot pass by skipping.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if st, err := os.Stat(SSHD); err != nil || st.IsDir() {
		missing = append(missing, SSHD)
	}
	for _, prog := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, prog)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s (missing: %s)", installHint, strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Config is what a test may choose about its sshd.
type Config struct {
	// AuthorizedKeys is the content of the login user's authorized_keys.
	AuthorizedKeys string
	// Extra holds sshd_config lines. They come before the defaults, so
	// they win (sshd keeps the first value of most keywords); a Match
	// line and everything after it go at the end of the file.
	Extra []string
	// HostKeyTypes lists the host keys to generate: "ed25519" (the
	// default), "ecdsa", "rsa".
	HostKeyTypes []string
}

// Server is a private sshd. Its fields are read-only.
type Server struct {
	Host     string          // always 127.0.0.1
	Port     int             // kept across Stop and Start
	Dir      string          // holds sshd_config, keys, authorized_keys, sshd.log
	User     string          // the login user: the user running the test
	HostKeys []ssh.PublicKey // in HostKeyTypes order

	t       testing.TB
	config  string // path of sshd_config
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
}

// Start writes a configuration into a new temporary directory, starts sshd
// on a free 127.0.0.1 port and returns once it listens. The server is
// stopped when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Require(t)
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// The privilege separation directory; Debian creates it only
		// when the sshd service starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
	}
	s := &Server{
		Host: "127.0.0.1",
		Dir:  t.TempDir(),
		User: u.Username,
		t:    t,
	}
	s.config = filepath.Join(s.Dir, "sshd_config")
	s.logPath = filepath.Join(s.Dir, "sshd.log")

	types := cfg.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	var hostKeyPaths []string
	for _, typ := range types {
		path := filepath.Join(s.Dir, "ssh_host_"+typ+"_key")
		pub := writeHostKey(t, typ, path)
		s.HostKeys = append(s.HostKeys, pub)
		hostKeyPaths = append(hostKeyPaths, path)
	}
	s.SetAuthorizedKeys(cfg.AuthorizedKeys)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			log := s.Log()
			if len(log) > maxLogShown {
				log = "...\n" + log[len(log)-maxLogShown:]
			}
			t.Logf("sshd log (%s):\n%s", s.logPath, log)
		}
	})

	// Another process may take the port between our probe and sshd's
	// bind; try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		s.Port = freePort(t)
		s.writeConfig(t, hostKeyPaths, cfg.Extra)
		err := s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == 4 {
			t.Fatalf("sshdtest: %v", err)
		}
	}
}

var errAddrInUse = errors.New("address already in use")

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) writeConfig(t testing.TB, hostKeys, extra []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# Written by sshdtest; /etc/ssh/sshd_config is not read.\n")
	// Extra lines first: for most keywords the first value wins. A Match
	// block must be last, or it would swallow the defaults.
	var match []string
	for i, line := range extra {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "match ") {
			match = extra[i:]
			break
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "ListenAddress %s:%d\n", s.Host, s.Port)
	for _, k := range hostKeys {
		fmt.Fprintf(&b, "HostKey %s\n", k)
	}
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", s.AuthorizedKeysPath())
	b.WriteString(strings.Join([]string{
		"LogLevel VERBOSE",
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"IgnoreRhosts yes",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"Subsystem sftp /usr/lib/openssh/sftp-server",
		"",
	}, "\n"))
	for _, line := range match {
		b.WriteString(line + "\n")
	}
	if err := os.WriteFile(s.config, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

// start runs sshd and waits until it listens on s.Port.
func (s *Server) start() error {
	if s.cmd != nil {
		return errors.New("sshd already running")
	}
	// The log file is appended to, so that it covers every run of the
	// server; remember where this run starts.
	offset := int64(len(s.readLog()))
	cmd := exec.Command(SSHD, "-D", "-f", s.config, "-E", s.logPath)
	cmd.Dir = s.Dir
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	listening := fmt.Sprintf("Server listening on %s port %d.", s.Host, s.Port)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(startTimeout)
	for {
		if log := s.readLog(); int64(len(log)) > offset {
			if strings.Contains(log[offset:], listening) {
				return nil
			}
		}
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			log := s.readLog()[offset:]
			if strings.Contains(log, "Address already in use") {
				return errAddrInUse
			}
			return fmt.Errorf("sshd exited before listening: %s\n%s%s", cmd.ProcessState, stderr.String(), log)
		case <-deadline:
			s.Stop()
			return fmt.Errorf("sshd did not listen on port %d within %v", s.Port, startTimeout)
		case <-tick.C:
		}
	}
}

// Start starts a stopped server again on the same port, with the same keys
// and configuration.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("sshdtest: %v", err)
	}
}

// Stop stops sshd and every connection it is serving, as a machine going
// down would. It does nothing if the server is stopped.
func (s *Server) Stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	// Freeze the listener so that it forks no new connection while its
	// children are collected; each connection is a child (sshd re-executes
	// itself per connection) that started its own session.
	s.cmd.Process.Signal(syscall.SIGSTOP)
	children := childPIDs(pid)
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Process.Signal(syscall.SIGCONT)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(startTimeout):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// AuthorizedKeysPath is the login user's authorized_keys file.
func (s *Server) AuthorizedKeysPath() string {
	return filepath.Join(s.Dir, "authorized_keys")
}

// SetAuthorizedKeys replaces the authorized_keys content. sshd reads it at
// every login, so the server needs no restart.
func (s *Server) SetAuthorizedKeys(content string) {
	s.t.Helper()
	path := s.AuthorizedKeysPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		s.t.Fatalf("sshdtest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		s.t.Fatalf("sshdtest: %v", err)
	}
}

// KnownHostsLines returns one known_hosts line per host key, for
// "[127.0.0.1]:PORT".
func (s *Server) KnownHostsLines() string {
	var b strings.Builder
	host := "[" + s.Host + "]:" + strconv.Itoa(s.Port)
	for _, k := range s.HostKeys {
		fmt.Fprintf(&b, "%s %s", host, ssh.MarshalAuthorizedKey(k))
	}
	return b.String()
}

// KnownHostsFile writes KnownHostsLines to a file in s.Dir and returns its
// path.
func (s *Server) KnownHostsFile() string {
	s.t.Helper()
	path := filepath.Join(s.Dir, "known_hosts")
	if err := os.WriteFile(path, []byte(s.KnownHostsLines()), 0o600); err != nil {
		s.t.Fatalf("sshdtest: %v", err)
	}
	return path
}

// ClientOptions returns options for ssh, scp and sftp that log in to this
// server as s.User with the key at keyPath only, checking the host key
// against knownHosts (KnownHostsFile when empty), without reading
// ~/.ssh/config, ~/.ssh/known_hosts, an agent or a terminal. The host
// (s.Host) is not included.
//
// OpenSSH keeps the first value given for an option: put options that must
// differ before these.
func (s *Server) ClientOptions(keyPath, knownHosts string) []string {
	if knownHosts == "" {
		knownHosts = s.KnownHostsFile()
	}
	return []string{
		"-F", "/dev/null",
		"-i", keyPath,
		"-o", "Port=" + strconv.Itoa(s.Port),
		"-o", "User=" + s.User,
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UpdateHostKeys=no",
		"-o", "ControlPath=none",
		"-o", "ConnectTimeout=10",
		// About twice as fast as the default sntrup761 hybrid on a
		// loaded machine; tests that care about the default override it.
		"-o", "KexAlgorithms=curve25519-sha256",
	}
}

// SSHArgs returns the arguments for ssh to log in to this server (see
// ClientOptions); append the remote command, if any.
func (s *Server) SSHArgs(keyPath, knownHosts string) []string {
	return append(s.ClientOptions(keyPath, knownHosts), s.Host)
}

// Log returns everything sshd has logged, across restarts.
func (s *Server) Log() string {
	return s.readLog()
}

func (s *Server) readLog() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.t.Errorf("sshdtest: %v", err)
	}
	return string(b)
}

// Connections counts the TCP connections sshd has accepted, across
// restarts, whether or not they logged in.
func (s *Server) Connections() int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s.readLog()))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Connection from ") {
			n++
		}
	}
	return n
}

// WaitLog waits until the part of sshd's log after byte offset since
// contains substr, or fails the test after timeout. Take since from
// len(s.Log()) before the step being checked (0 searches the whole log):
// sshd may log after the client has gone.
func (s *Server) WaitLog(since int, substr string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if log := s.readLog(); len(log) > since && strings.Contains(log[since:], substr) {
			return
		}
		select {
		case <-deadline:
			s.t.Fatalf("sshdtest: sshd did not log %q within %v", substr, timeout)
		case <-tick.C:
		}
	}
}

// writeHostKey makes a host key of type typ, writes its private half to
// path (mode 0600, as sshd requires) and its public half to path.pub.
func writeHostKey(t testing.TB, typ, path string) ssh.PublicKey {
	t.Helper()
	var key crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("sshdtest: unknown host key type %q (want ed25519, ecdsa or rsa)", typ)
	}
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	_, pub := writeKey(t, key, path, "")
	return pub.PublicKey()
}

// writeKey writes key in OpenSSH format to path (0600) and its public key
// to path.pub, and returns a signer for it.
func writeKey(t testing.TB, key crypto.Signer, path, passphrase string) (string, ssh.Signer) {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(key, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	pubPath := path + ".pub"
	if err := os.WriteFile(pubPath, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	return pubPath, signer
}

// NewKey makes an ed25519 key pair: dir/name (OpenSSH format, mode 0600,
// encrypted when passphrase is not empty) and dir/name.pub
// (authorized_keys format). The signer works whatever the passphrase.
func NewKey(t testing.TB, dir, name, passphrase string) (privPath, pubPath string, signer ssh.Signer) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	privPath = filepath.Join(dir, name)
	pubPath, signer = writeKey(t, key, privPath, passphrase)
	return privPath, pubPath, signer
}

// SignUserCert signs the public key at pubPath with the (unencrypted) CA
// private key at caPriv, using ssh-keygen, for one principal and a validity
// from five minutes ago to one hour from now. It returns the certificate's
// path, which is where ssh looks for it: pubPath with ".pub" replaced by
// "-cert.pub". Trust the CA with Config.Extra
// "TrustedUserCAKeys " + caPriv + ".pub".
func SignUserCert(t testing.TB, caPriv, pubPath, principal string) string {
	t.Helper()
	if !strings.HasSuffix(pubPath, ".pub") {
		t.Fatalf("sshdtest: public key path %q does not end in .pub", pubPath)
	}
	out, err := exec.Command("ssh-keygen", "-q", "-s", caPriv, "-I", "sshdtest",
		"-n", principal, "-V", "-5m:+1h", pubPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sshdtest: ssh-keygen -s: %v\n%s", err, out)
	}
	return strings.TrimSuffix(pubPath, ".pub") + "-cert.pub"
}
