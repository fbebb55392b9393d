package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// cpuGroups counts the CPU of each peer sshd's whole tree in a cgroup of
// its own (cgroup v2's cpu.stat, exact): every process counts, whichever
// parent reaps it, or none. The listener's time for reaped children
// (treeCPU) misses a process whose parent exits without waiting for it,
// and OpenSSH's monitor does just that with its session process when the
// client sends a disconnect, as ssh(1) does and banpush does not: counted
// that way, an OpenSSH client's connection looked 4 to 5 ms cheaper to the
// peer than it is.
type cpuGroups struct {
	root string // the bench's cgroup directory

	mu   sync.Mutex
	dirs map[int]string // sshd listener pid -> its group
}

// newCPUGroups makes the bench's cgroup directory under the machine's
// cgroup v2 hierarchy, and removes it when the bench ends (after the
// peers: cleanups run in reverse order).
func newCPUGroups(cl *cleanups) (*cpuGroups, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(mount, fmt.Sprintf("banpush-bench-%d", os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	g := &cpuGroups{root: root, dirs: map[int]string{}}
	cl.add(g.close)
	return g, nil
}

// cgroup2Mount finds where cgroup v2 is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid machine).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}

// add moves an sshd listener into a group of its own; the processes it
// starts from then on are in it too.
func (g *cpuGroups) add(pid int) error {
	dir := filepath.Join(g.root, strconv.Itoa(pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		os.Remove(dir)
		return fmt.Errorf("cgroup: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dirs[pid] = dir
	return nil
}

// usage is the CPU time used so far in the groups of the listeners pids;
// ok is false if one of them has no group.
func (g *cpuGroups) usage(pids []int) (d time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, pid := range pids {
		dir, found := g.dirs[pid]
		if !found {
			return 0, false
		}
		b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
		if err != nil {
			return 0, false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, found := strings.CutPrefix(l, "usage_usec "); found {
				us, _ := strconv.ParseInt(v, 10, 64)
				d += time.Duration(us) * time.Microsecond
			}
		}
	}
	return d, true
}

// close removes the groups, moving anything still in them to the root
// group first (the peers have been stopped by then).
func (g *cpuGroups) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	parent := filepath.Join(filepath.Dir(g.root), "cgroup.procs")
	for _, dir := range g.dirs {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(parent, []byte(pid), 0o644)
			}
		}
		os.Remove(dir)
	}
	if err := os.Remove(g.root); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "banpush-bench: cgroup: %v\n", err)
	}
}

// countCPU puts a peer sshd in a cgroup of its own, if the bench has them.
func (b *bench) countCPU(d *sshdtest.Daemon) error {
	if b.groups == nil {
		return nil
	}
	return b.groups.add(d.Pid())
}

// peersCPU is the CPU time the peers' sshd, with every process under
// them, have used so far: from their cgroups when the bench has them, or
// else from the listeners' reaped children (treeCPU, which undercounts
// OpenSSH clients: see cpuGroups).
func (b *bench) peersCPU(peers []*peer) time.Duration {
	pids := listeners(peers)
	if b.groups != nil {
		if d, ok := b.groups.usage(pids); ok {
			return d
		}
	}
	return treeCPU(pids...)
}

// perfPeriod is the CPU time between two of perf's samples: each sample
// stands for that much of a process's CPU.
const perfPeriod = 50 * time.Microsecond

// cpuByProgram runs f while perf(1) samples the processes under the
// listeners pids (those that exist and those they start), and returns
// their CPU time by program name (sshd, sh, banpush). It returns nil,
// nil when perf is not installed.
func (b *bench) cpuByProgram(pids []int, f func() error) (map[string]time.Duration, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, nil
	}
	out := filepath.Join(b.dir, "perf.data")
	var list []string
	for _, p := range pids {
		list = append(list, strconv.Itoa(p))
	}
	rec := exec.Command("perf", "record", "-q", "-e", "task-clock", "-c", strconv.FormatInt(int64(perfPeriod/time.Nanosecond), 10),
		"-p", strings.Join(list, ","), "-o", out)
	if err := rec.Start(); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // perf attaches
	ferr := f()
	rec.Process.Signal(os.Interrupt)
	rec.Wait()
	if ferr != nil {
		return nil, ferr
	}
	rep, err := exec.Command("perf", "report", "-i", out, "--stdio", "-q", "--sort", "comm", "-F", "sample,comm", "-g", "none").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	by := map[string]time.Duration{}
	for _, l := range strings.Split(string(rep), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				by[f[1]] += time.Duration(n) * perfPeriod
			}
		}
	}
	return by, nil
}
