package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"golang.org/x/crypto/ssh"
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

// peer is one receiving host: a port of a private OpenSSH server on
// 127.0.0.1 (sshdtest.Daemon), with its name in the inventories, its own
// authorized_keys and the log its 'banpush receive' appends to. The first
// -peers peers have an sshd each; the peers of the fan-out share sshd
// processes, each listening on up to portsPerSSHD ports with an
// authorized_keys file per port (sshd_config Match LocalPort).
type peer struct {
	d      *sshdtest.Daemon
	name   string
	port   int
	banLog string
}

// portsPerSSHD is how many fan-out peers share one sshd: sshd listens on
// at most 16 sockets (MAX_LISTEN_SOCKS in OpenSSH's sshd.c).
const portsPerSSHD = 16

// sharedMaxStartups lets a shared sshd take every handshake a baseline
// wave or banpush's sender opens at once: sshd's default, 10:30:100,
// refuses 30% of unauthenticated connections past 10, which would measure
// the refusals.
const sharedMaxStartups = "MaxStartups 1000:30:2000"

// startPeer starts the sshd of a peer in dir, which logs user in with
// authorizedKeys. It is stopped, with every connection, shell and receiver
// it started, when the bench ends.
func startPeer(cl *cleanups, name, dir, user, authorizedKeys string) (*peer, error) {
	d, err := launch(cl, name, dir, user, authorizedKeys, nil)
	if err != nil {
		return nil, err
	}
	return &peer{d: d, name: name, port: d.Port}, nil
}

// startShared starts one sshd in dir for len(names) peers: the first on
// the sshd's own port with keys[0], each other one on a port of its own
// with its keys (a Match LocalPort block naming its authorized_keys file).
func startShared(cl *cleanups, names []string, dir, user string, keys []string, uid, gid int) ([]*peer, error) {
	extra := []string{sharedMaxStartups}
	ports, err := holdPorts(cl, len(names)-1)
	if err != nil {
		return nil, err
	}
	var match []string
	for i := 1; i < len(names); i++ {
		port := ports[i-1]
		ak := filepath.Join(dir, names[i]+".authorized_keys")
		if err := os.WriteFile(ak, []byte(keys[i]), 0o644); err != nil {
			return nil, err
		}
		if err := os.Chown(ak, uid, gid); err != nil {
			return nil, err
		}
		extra = append(extra, fmt.Sprintf("ListenAddress 127.0.0.1:%d", port))
		match = append(match, fmt.Sprintf("Match LocalPort %d", port), "  AuthorizedKeysFile "+ak)
	}
	d, err := launch(cl, names[0], dir, user, keys[0], append(extra, match...))
	if err != nil {
		return nil, err
	}
	// sshd binds its ListenAddress lines last first: launch returns on
	// the sshd's own port, written last, before the others may be bound.
	peers := []*peer{{d: d, name: names[0], port: d.Port}}
	for i, port := range ports {
		if err := d.WaitLog(0, fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port), 10*time.Second); err != nil {
			return nil, errors.Join(fmt.Errorf("peer %s: %w", names[i+1], err), d.Close())
		}
		peers = append(peers, &peer{d: d, name: names[i+1], port: port})
	}
	return peers, nil
}

func launch(cl *cleanups, name, dir, user, authorizedKeys string, extra []string) (*sshdtest.Daemon, error) {
	d, err := sshdtest.Launch(sshdtest.Config{
		AuthorizedKeys: authorizedKeys,
		Dir:            dir,
		User:           user,
		Extra:          extra,
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
	return d, nil
}

// holdPorts holds n ports of 127.0.0.1 for sshd to listen on, until the
// bench ends (sshdtest.ReservePort): no other socket can take them.
func holdPorts(cl *cleanups, n int) ([]int, error) {
	var ports []int
	for range n {
		p, err := sshdtest.ReservePort()
		if err != nil {
			return nil, err
		}
		cl.add(func() { p.Close() })
		ports = append(ports, p.Number)
	}
	return ports, nil
}

// knownHostsLines are the known_hosts lines of the peer's host keys.
func (p *peer) knownHostsLines() string {
	var b strings.Builder
	for _, k := range p.d.HostKeys {
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s", p.port, ssh.MarshalAuthorizedKey(k))
	}
	return b.String()
}

// daemons lists the sshd processes that serve peers, each once.
func daemons(peers []*peer) []*sshdtest.Daemon {
	var out []*sshdtest.Daemon
	for _, p := range peers {
		if !slices.Contains(out, p.d) {
			out = append(out, p.d)
		}
	}
	return out
}

// tarpit accepts TCP connections on 127.0.0.1 and never answers, like a
// peer whose sshd hangs (sshdtest's Tarpit on a held port). It returns the
// port.
func tarpit(cl *cleanups) (int, error) {
	p, err := sshdtest.ReservePort()
	if err != nil {
		return 0, err
	}
	cl.add(func() { p.Close() })
	h, err := p.Tarpit(false)
	if err != nil {
		return 0, err
	}
	cl.add(func() { h.Close() })
	return p.Number, nil
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
// parent's ChildCPU). A living process's own time comes from its threads'
// schedstat, in nanoseconds, where the kernel has it: /proc/PID/stat
// counts in ticks of 10 ms, which rounds a stream receiver's fraction of a
// millisecond per ban down to nothing.
func treeCPU(pids ...int) time.Duration {
	ps := sshdtest.ReadProcs()
	var sum time.Duration
	for _, pid := range append(slices.Clone(pids), ps.Descendants(pids...)...) {
		p := ps[pid]
		own := p.CPU
		if ns, ok := schedCPU(pid); ok && ns > own {
			own = ns
		}
		sum += own + p.ChildCPU
	}
	return sum
}

// schedCPU sums the run time of a process's threads from
// /proc/PID/task/TID/schedstat (the first field, nanoseconds).
func schedCPU(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
	}
	return sum, true
}

// listeners are the process ids of the peers' sshd listeners.
func listeners(peers []*peer) []int {
	var out []int
	for _, d := range daemons(peers) {
		out = append(out, d.Pid())
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
