// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1, for banpush's
// integration tests and for banpush-bench, and makes keys and certificates
// for it.
//
// Launch is the core: it writes a configuration into a directory of the
// server's own (sshd_config, host keys, authorized_keys, pid file, log),
// starts sshd on a 127.0.0.1 port held for it (Port) and returns a Daemon
// whose methods return errors. Start and Server wrap it for tests: they
// skip or fail through package testenv, log in as LoginAccount (in
// testenv's sandbox an account with /bin/sh, never root's login shell),
// fail the test on error and stop the server when the test ends. Port
// also makes a held port a blackhole or a tarpit, the bad peers of the
// fault tests. Nothing is read from /etc/ssh/sshd_config or from
// the user's ~/.ssh, on the server side or on the client side (see
// SSHArgs). As root, sshd needs /run/sshd, which Launch creates. A server
// may present host certificates (Config.HostCertificate, SignCert), and be
// started through a wrapper (Config.Exec), such as BindMounted, which gives
// it a mount namespace of its own; StartMany starts many at once.
//
// Stop and Close stop sshd and everything it started: every connection
// (a child sshd), the login shell it ran and what the shell ran, such as
// 'banpush receive'. They freeze the listener and then every process below
// it (SIGSTOP), so that none forks unseen while the tree is collected from
// /proc, send SIGTERM, and wait until each process has exited; SIGKILL
// follows after a grace period. Processes are held by pidfd and known by
// their start time, so that a reused pid is never signalled.
//
// The package trusts its caller, the sshd, ssh and ssh-keygen binaries
// installed on the machine (and unshare, mount and sh for BindMounted) and
// /proc. It signals no process but sshd and
// those below it, and listens on and connects to 127.0.0.1 only. Only the
// test wrappers read the environment (through testenv) and report through
// testing.TB; the core never prints.
package sshdtest

import (
	"bufio"
	"bytes"
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
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/crypto/ssh"
)

// SSHD is the sshd binary the server runs. sshd insists on an absolute path.
const SSHD = testenv.SSHD

const (
	// startTimeout bounds how long a start waits for sshd to listen.
	startTimeout = 20 * time.Second
	// freezeTimeout bounds how long Stop waits for the processes it
	// freezes to stop.
	freezeTimeout = 5 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL, and
	// killTimeout how long it then waits for SIGKILL.
	stopGrace   = 5 * time.Second
	killTimeout = 5 * time.Second
)

// Config is what a caller may choose about its sshd.
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
	// Dir is the directory for the server's files; it is created if
	// missing and kept by Close. Empty: Launch makes a new temporary
	// directory, which Close removes, and Start uses t.TempDir().
	Dir string
	// User is the login user; empty means the user running sshd. Another
	// user (sshd must then run as root) needs to reach authorized_keys:
	// Launch makes Dir 0711 and authorized_keys 0644, and every directory
	// above Dir must let the user through.
	User string
	// OwnProcessGroup starts sshd in a process group of its own, so that
	// a Ctrl-C on the terminal reaches the caller only, which can then
	// stop the server in order.
	OwnProcessGroup bool
	// HostCertificate, when set, is called with the path of each host
	// key's public half once Launch has made it, and returns the path of
	// a certificate for that key (see SignCert), which sshd then presents
	// (sshd_config HostCertificate).
	HostCertificate func(pubPath string) (certPath string, err error)
	// Exec, when set, is the command that starts sshd: sshd and its
	// arguments are appended to it. Its program must end by executing
	// them in its own process (as unshare(1) and a shell's exec do), so
	// that the pid Launch holds is sshd's. See BindMounted.
	Exec []string
	// Port, when set, is the port sshd listens on, which the caller holds
	// and gives back. Nil: Launch holds one (ReservePort) until Close.
	Port *Port
}

// Daemon is a private sshd. Its fields are read-only. Its methods are not
// safe for concurrent use.
type Daemon struct {
	Host     string          // always 127.0.0.1
	Port     int             // kept across Stop and Start
	Dir      string          // holds sshd_config, keys, authorized_keys, sshd.log
	User     string          // the login user
	HostKeys []ssh.PublicKey // in HostKeyTypes order

	config    string      // path of sshd_config
	logPath   string      // sshd's log, appended to by every run
	keysMode  os.FileMode // of authorized_keys
	ownGroup  bool
	exec      []string      // Config.Exec
	port      *Port         // the port held for sshd
	ownPort   bool          // Launch reserved port: Close gives it back
	removeDir bool          // Launch made Dir: Close removes it
	grace     time.Duration // from SIGTERM to SIGKILL in Stop
	closed    bool
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
}

// Launch writes a configuration (see Config) and starts sshd on a held
// 127.0.0.1 port (Config.Port, or one of its own), and returns once it
// listens. Close stops it.
func Launch(cfg Config) (*Daemon, error) {
	cur, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshdtest: current user: %w", err)
	}
	login := cur
	if cfg.User != "" && cfg.User != cur.Username {
		if login, err = user.Lookup(cfg.User); err != nil {
			return nil, fmt.Errorf("sshdtest: login user: %w", err)
		}
	}
	d := &Daemon{Host: "127.0.0.1", Dir: cfg.Dir, User: login.Username,
		keysMode: 0o600, ownGroup: cfg.OwnProcessGroup, grace: stopGrace, exec: cfg.Exec}
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "sshdtest-"); err != nil {
			return nil, fmt.Errorf("sshdtest: %w", err)
		}
		d.removeDir = true
	} else if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	if err := d.launch(cfg, login.Uid != cur.Uid); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

// launch does the rest of Launch, in d.Dir. otherUser is set when the
// login user is not the user running sshd.
func (d *Daemon) launch(cfg Config, otherUser bool) error {
	if otherUser {
		// sshd reads authorized_keys as the login user.
		d.keysMode = 0o644
		if err := os.Chmod(d.Dir, 0o711); err != nil {
			return fmt.Errorf("sshdtest: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		// The privilege separation directory; Debian creates it only
		// when the sshd service starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fmt.Errorf("sshdtest: %w", err)
		}
	}
	d.config = filepath.Join(d.Dir, "sshd_config")
	d.logPath = filepath.Join(d.Dir, "sshd.log")

	types := cfg.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	var hostKeyPaths, certPaths []string
	for _, typ := range types {
		path := filepath.Join(d.Dir, "ssh_host_"+typ+"_key")
		pub, err := writeHostKey(typ, path)
		if err != nil {
			return err
		}
		d.HostKeys = append(d.HostKeys, pub)
		hostKeyPaths = append(hostKeyPaths, path)
		if cfg.HostCertificate != nil {
			cert, err := cfg.HostCertificate(path + ".pub")
			if err != nil {
				return fmt.Errorf("sshdtest: host certificate: %w", err)
			}
			certPaths = append(certPaths, cert)
		}
	}
	if err := d.SetAuthorizedKeys(cfg.AuthorizedKeys); err != nil {
		return err
	}

	// The port is held, not merely found free: nothing else can take it
	// before sshd binds it, nor between a Stop and a Start.
	d.port = cfg.Port
	if d.port == nil {
		p, err := ReservePort()
		if err != nil {
			return err
		}
		d.port, d.ownPort = p, true
	}
	d.Port = d.port.Number
	if err := d.writeConfig(hostKeyPaths, certPaths, cfg.Extra); err != nil {
		return err
	}
	return d.Start()
}

func (d *Daemon) writeConfig(hostKeys, certs, extra []string) error {
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
	fmt.Fprintf(&b, "ListenAddress %s:%d\n", d.Host, d.Port)
	for _, k := range hostKeys {
		fmt.Fprintf(&b, "HostKey %s\n", k)
	}
	for _, c := range certs {
		fmt.Fprintf(&b, "HostCertificate %s\n", c)
	}
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(d.Dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", d.AuthorizedKeysPath())
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
	if err := os.WriteFile(d.config, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	return nil
}

// Start starts a stopped server again on the same port, with the same keys
// and configuration, and returns once it listens.
func (d *Daemon) Start() error {
	if d.closed {
		return errors.New("sshdtest: server closed")
	}
	if d.cmd != nil {
		return errors.New("sshdtest: sshd already running")
	}
	// The log file is appended to, so that it covers every run of the
	// server; remember where this run starts.
	log, err := d.Log()
	if err != nil {
		return err
	}
	offset := len(log)
	argv := append(append([]string(nil), d.exec...), SSHD, "-D", "-f", d.config, "-E", d.logPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = d.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// If this process dies, so does sshd (in testenv's sandbox its
	// sessions go too). Best effort: the signal comes when the thread
	// that started sshd ends, which Go threads seldom do.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: d.ownGroup, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	d.cmd, d.done = cmd, done

	listening := fmt.Sprintf("Server listening on %s port %d.", d.Host, d.Port)
	deadline := time.Now().Add(startTimeout)
	for {
		log, err := d.Log()
		if err != nil {
			return errors.Join(err, d.Stop())
		}
		if len(log) > offset && strings.Contains(log[offset:], listening) {
			return nil
		}
		select {
		case <-done:
			d.cmd, d.done = nil, nil
			if len(log) < offset {
				offset = 0
			}
			return fmt.Errorf("sshdtest: sshd exited before listening: %s\n%s%s", cmd.ProcessState, out.String(), log[offset:])
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("sshdtest: sshd did not listen on port %d within %v", d.Port, startTimeout), d.Stop())
		}
	}
}

// Stop stops sshd and everything it started (see the package comment), as
// a machine going down would, and returns once all of it has exited. It
// does nothing if the server is stopped. The error lists the processes
// that outlived SIGKILL.
func (d *Daemon) Stop() error {
	if d.cmd == nil {
		return nil
	}
	p, done := d.cmd.Process, d.done
	d.cmd, d.done = nil, nil
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	// Freeze the listener so that it forks no new connection while the
	// processes below it are collected: each connection is a child
	// (sshd re-executes itself per connection) that runs the session.
	p.Signal(syscall.SIGSTOP)
	deadline := time.Now().Add(freezeTimeout)
	await(deadline, func() bool {
		st, err := readProc(p.Pid)
		return exited() || err != nil || st.State == 'T'
	})
	var tree []*member
	if !exited() { // once reaped, its pid may name another process
		tree = freeze(p.Pid, deadline)
	}
	defer func() {
		for _, m := range tree {
			m.proc.Release()
		}
	}()
	for _, m := range tree {
		m.signal(syscall.SIGTERM)
	}
	p.Signal(syscall.SIGTERM)
	for _, m := range tree {
		m.signal(syscall.SIGCONT)
	}
	p.Signal(syscall.SIGCONT)
	allGone := func() bool { return exited() && allOf(tree, (*member).gone) }
	if await(time.Now().Add(d.grace), allGone) {
		return nil
	}
	for _, m := range tree {
		m.signal(syscall.SIGKILL)
	}
	p.Kill()
	if await(time.Now().Add(killTimeout), allGone) {
		return nil
	}
	var left []string
	if !exited() {
		left = append(left, strconv.Itoa(p.Pid))
	}
	for _, m := range tree {
		if !m.gone() {
			left = append(left, strconv.Itoa(m.pid))
		}
	}
	return fmt.Errorf("sshdtest: processes %s still running %v after SIGKILL", strings.Join(left, ", "), killTimeout)
}

// Restart stops the server and starts it again on the same port.
func (d *Daemon) Restart() error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.Start()
}

// Close stops the server for good (see Stop) and removes Dir if Launch
// made it. Closing a closed server does nothing.
func (d *Daemon) Close() error {
	err := d.Stop()
	d.closed = true
	if d.ownPort {
		d.ownPort = false
		d.port.Close()
	}
	if d.removeDir {
		d.removeDir = false
		if rerr := os.RemoveAll(d.Dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("sshdtest: %w", rerr))
		}
	}
	return err
}

// Pid is the process id of the listening sshd, or 0 while it is stopped.
func (d *Daemon) Pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// HeldPort is the port held for sshd (Config.Port, or Launch's own). While
// the server is stopped, connections to it are refused; a test may make it
// a Blackhole or a Tarpit, and close that before Start.
func (d *Daemon) HeldPort() *Port { return d.port }

// Addr is "127.0.0.1:PORT".
func (d *Daemon) Addr() string {
	return net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
}

// AuthorizedKeysPath is the login user's authorized_keys file.
func (d *Daemon) AuthorizedKeysPath() string {
	return filepath.Join(d.Dir, "authorized_keys")
}

// SetAuthorizedKeys replaces the authorized_keys content. sshd reads it at
// every login, so the server needs no restart.
func (d *Daemon) SetAuthorizedKeys(content string) error {
	path := d.AuthorizedKeysPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), d.keysMode); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	// WriteFile leaves the mode of an existing file, and the umask may
	// have narrowed a new one.
	if err := os.Chmod(tmp, d.keysMode); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	return nil
}

// KnownHostsLines returns one known_hosts line per host key, for
// "[127.0.0.1]:PORT".
func (d *Daemon) KnownHostsLines() string {
	var b strings.Builder
	host := "[" + d.Host + "]:" + strconv.Itoa(d.Port)
	for _, k := range d.HostKeys {
		fmt.Fprintf(&b, "%s %s", host, ssh.MarshalAuthorizedKey(k))
	}
	return b.String()
}

// KnownHostsFile writes KnownHostsLines to a file in Dir and returns its
// path.
func (d *Daemon) KnownHostsFile() (string, error) {
	path := filepath.Join(d.Dir, "known_hosts")
	if err := os.WriteFile(path, []byte(d.KnownHostsLines()), 0o600); err != nil {
		return "", fmt.Errorf("sshdtest: %w", err)
	}
	return path, nil
}

// ClientOptions returns options for ssh, scp and sftp that log in to this
// server as User with the key at keyPath only, checking the host key
// against knownHosts (KnownHostsFile when empty), without reading
// ~/.ssh/config, ~/.ssh/known_hosts, an agent or a terminal. The host
// (Host) is not included.
//
// OpenSSH keeps the first value given for an option: put options that must
// differ before these.
func (d *Daemon) ClientOptions(keyPath, knownHosts string) ([]string, error) {
	if knownHosts == "" {
		var err error
		if knownHosts, err = d.KnownHostsFile(); err != nil {
			return nil, err
		}
	}
	return []string{
		"-F", "/dev/null",
		"-i", keyPath,
		"-o", "Port=" + strconv.Itoa(d.Port),
		"-o", "User=" + d.User,
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
	}, nil
}

// SSHArgs returns the arguments for ssh to log in to this server (see
// ClientOptions); append the remote command, if any.
func (d *Daemon) SSHArgs(keyPath, knownHosts string) ([]string, error) {
	opts, err := d.ClientOptions(keyPath, knownHosts)
	if err != nil {
		return nil, err
	}
	return append(opts, d.Host), nil
}

// Log returns everything sshd has logged, across restarts.
func (d *Daemon) Log() (string, error) {
	b, err := os.ReadFile(d.logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return string(b), fmt.Errorf("sshdtest: %w", err)
	}
	return string(b), nil
}

// Connections counts the TCP connections sshd has accepted, across
// restarts, whether or not they logged in.
func (d *Daemon) Connections() (int, error) {
	log, err := d.Log()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Connection from ") {
			n++
		}
	}
	return n, err
}

// WaitLog waits until the part of sshd's log after byte offset since
// contains substr, for at most timeout. Take since from len(Log()) before
// the step being checked (0 searches the whole log): sshd may log after
// the client has gone.
func (d *Daemon) WaitLog(since int, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		log, err := d.Log()
		if err != nil {
			return err
		}
		if len(log) > since && strings.Contains(log[since:], substr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshdtest: sshd did not log %q within %v", substr, timeout)
		}
		time.Sleep(pollInterval)
	}
}
