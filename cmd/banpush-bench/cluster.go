package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/sshdtest"
)

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

// peer is one private OpenSSH server on 127.0.0.1 (sshdtest.Daemon), with
// its name in the inventories and the log its 'banpush receive' appends to.
type peer struct {
	*sshdtest.Daemon
	name   string
	banLog string
}

// startPeer starts the sshd of a peer in dir, which logs user in with
// authorizedKeys. It is stopped, with every connection, shell and receiver
// it started, when the bench ends.
func startPeer(cl *cleanups, name, dir, user, authorizedKeys string) (*peer, error) {
	d, err := sshdtest.Launch(sshdtest.Config{
		AuthorizedKeys: authorizedKeys,
		Dir:            dir,
		User:           user,
		// A Ctrl-C on the terminal reaches the bench, which then stops
		// sshd and its connections in order.
		OwnProcessGroup: true,
	})
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", name, err)
	}
	cl.add(func() {
		if err := d.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "banpush-bench: peer %s: %v\n", name, err)
		}
	})
	return &peer{Daemon: d, name: name}, nil
}

// rssKiB is the resident size of the listening sshd.
func (p *peer) rssKiB() int {
	return procStatusKiB(p.Pid(), "VmRSS:")
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

// findProcs lists the processes whose argv contains every one of words, in
// order, as whole arguments.
func findProcs(words ...string) []int {
	return sshdtest.FindProcs(func(_ int, args []string) bool { return containsSeq(args, words) })
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

// treeCPU is the CPU time used so far by the processes pids and all their
// descendants, living or reaped (a reaped process's time is in its
// parent's ChildCPU).
func treeCPU(pids ...int) time.Duration {
	ps := sshdtest.ReadProcs()
	var sum time.Duration
	for _, pid := range append(slices.Clone(pids), ps.Descendants(pids...)...) {
		p := ps[pid]
		sum += p.CPU + p.ChildCPU
	}
	return sum
}

// listeners are the process ids of the peers' sshd listeners.
func listeners(peers []*peer) []int {
	var out []int
	for _, p := range peers {
		out = append(out, p.Pid())
	}
	return out
}

// stopProcsUnder ends every process with an argument inside dir: SIGTERM,
// then SIGKILL after 5 s.
func stopProcsUnder(dir string) {
	err := sshdtest.StopProcs(func(_ int, args []string) bool {
		return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, dir+"/") })
	}, nil, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "banpush-bench: %v\n", err)
	}
}
