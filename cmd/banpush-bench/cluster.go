package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sshdPath is the OpenSSH server; sshd insists on an absolute path.
const sshdPath = "/usr/sbin/sshd"

// cleanups is the list of things to undo when the bench ends, however it
// ends. They run in reverse order of registration.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// sshd is one private OpenSSH server on 127.0.0.1 with its own directory,
// host key, authorized_keys and log.
type sshd struct {
	name    string
	dir     string
	port    int
	hostPub string // "ssh-ed25519 AAAA..."
	log     string // sshd's own log (LogLevel VERBOSE)
	banLog  string // the log banpush receive appends to
	cmd     *exec.Cmd
	done    chan struct{}
}

// startSSHD writes a configuration into dir and starts sshd on a free
// loopback port, retrying a few ports if another process takes one first.
func startSSHD(ctx context.Context, cl *cleanups, name, dir, authorizedKeys string) (*sshd, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	s := &sshd{name: name, dir: dir, log: filepath.Join(dir, "sshd.log")}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", hostKey); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return nil, fmt.Errorf("%s: bad host key", hostKey)
	}
	s.hostPub = f[0] + " " + f[1]
	ak := filepath.Join(dir, "authorized_keys")
	// sshd reads it as the user it logs in.
	if err := os.WriteFile(ak, []byte(authorizedKeys), 0o644); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		conf := strings.Join([]string{
			fmt.Sprintf("ListenAddress 127.0.0.1:%d", s.port),
			"HostKey " + hostKey,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + ak,
			"LogLevel VERBOSE",
			"StrictModes no",
			"UsePAM no",
			"PermitRootLogin prohibit-password",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"UseDNS no",
			"PrintMotd no",
			"PrintLastLog no",
			"",
		}, "\n")
		if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
			return nil, err
		}
		err = s.start(cl)
		if err == nil || attempt == 4 || !strings.Contains(err.Error(), "Address already in use") {
			return s, err
		}
	}
}

func (s *sshd) start(cl *cleanups) error {
	offset := fileSize(s.log)
	cmd := exec.Command(sshdPath, "-D", "-f", filepath.Join(s.dir, "sshd_config"), "-E", s.log)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group: a Ctrl-C on the terminal reaches the bench,
	// which then stops sshd and its connections in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	cl.add(s.stop)
	listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", s.port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := readFrom(s.log, offset); strings.Contains(string(b), listening) {
			return nil
		}
		select {
		case <-s.done:
			b, _ := readFrom(s.log, offset)
			return fmt.Errorf("sshd %s exited: %s%s", s.name, out.String(), b)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd %s did not listen within 20s", s.name)
		}
	}
}

// stop stops sshd and the connections it serves: each connection is a
// child sshd in a session of its own, so the listener is frozen while they
// are collected.
func (s *sshd) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	pid := s.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGSTOP)
	children := childPIDs(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	syscall.Kill(pid, syscall.SIGCONT)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-s.done
	}
}

// connections counts the connections sshd has accepted so far.
func (s *sshd) connections() int {
	b, _ := os.ReadFile(s.log)
	return bytes.Count(b, []byte("Connection from "))
}

// rssKiB is the resident size of the listening sshd.
func (s *sshd) rssKiB() int {
	return procStatusKiB(s.cmd.Process.Pid, "VmRSS:")
}

func (s *sshd) knownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, s.hostPub)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// blackhole accepts TCP connections on 127.0.0.1 and never answers, like a
// peer whose sshd hangs. It returns the port.
func blackhole(cl *cleanups) (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	cl.add(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command is exec.CommandContext for a command in a process group of its
// own: when ctx ends (Ctrl-C, -timeout), the whole group is killed, so that
// no shell's children outlive the bench or hold its pipes.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// run runs a command and returns its combined output in the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.Bytes(), err
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	for p, c := range procTable() {
		if c.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// findProcs lists the processes whose argv contains every one of words, in
// order, as whole arguments.
func findProcs(words ...string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if containsSeq(args, words) {
			out = append(out, n)
		}
	}
	return out
}

// findArgs returns the argv of pid if it contains words in order, else nil.
func findArgs(pid int, words ...string) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if !containsSeq(args, words) {
		return nil
	}
	return args
}

func containsSeq(args, words []string) bool {
	for i := 0; i+len(words) <= len(args); i++ {
		ok := true
		for j, w := range words {
			if args[i+j] != w {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// procStatusKiB reads one "Key: N kB" field of /proc/PID/status.
func procStatusKiB(pid int, key string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l[len(key):])
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

var errTimeout = errors.New("timed out")

// procCPU is the CPU time of one process and of its reaped children, from
// /proc/PID/stat.
type procCPU struct {
	ppid       int
	self, dead time.Duration
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on Linux.
const clockTick = 10 * time.Millisecond

// procTable reads every process's parent and CPU times.
func procTable() map[int]procCPU {
	t := map[int]procCPU{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		n := func(k int) time.Duration { v, _ := strconv.ParseInt(f[k], 10, 64); return time.Duration(v) * clockTick }
		ppid, _ := strconv.Atoi(f[1])
		t[pid] = procCPU{ppid: ppid, self: n(11) + n(12), dead: n(13) + n(14)}
	}
	return t
}

// treeCPU is the CPU time used so far by the processes pids and all their
// descendants, living or reaped.
func treeCPU(pids ...int) time.Duration {
	t := procTable()
	kids := map[int][]int{}
	for pid, p := range t {
		kids[p.ppid] = append(kids[p.ppid], pid)
	}
	var sum time.Duration
	var walk func(int)
	walk = func(pid int) {
		p, ok := t[pid]
		if !ok {
			return
		}
		sum += p.self + p.dead
		for _, k := range kids[pid] {
			walk(k)
		}
	}
	for _, pid := range pids {
		walk(pid)
	}
	return sum
}

// listeners are the process ids of the peers' sshd listeners.
func listeners(peers []*sshd) []int {
	var out []int
	for _, p := range peers {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// stopProcsUnder ends, by process id, every process with an argument
// inside dir: SIGTERM, then SIGKILL after 2 s.
func stopProcsUnder(dir string) {
	find := func() []int {
		var out []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			for _, a := range strings.Split(string(b), "\x00") {
				if strings.HasPrefix(a, dir+"/") {
					out = append(out, pid)
					break
				}
			}
		}
		return out
	}
	for _, pid := range find() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for i := 0; i < 200 && len(find()) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range find() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
