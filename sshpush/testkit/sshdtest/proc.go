package sshdtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one process as /proc/PID/stat describes it.
type Proc struct {
	PID, PPID int
	// State is the state letter: R running, S sleeping, T stopped,
	// Z zombie...
	State byte
	// Start is when the process started, in clock ticks after boot. With
	// PID it names one process: a pid can be reused, not both.
	Start uint64
	// CPU is the user and system time the process has used; ChildCPU that
	// of its children it has waited for.
	CPU, ChildCPU time.Duration
}

// Procs is a snapshot of the processes on the machine, by pid.
type Procs map[int]Proc

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on Linux.
const clockTick = 10 * time.Millisecond

// ReadProcs reads /proc/*/stat: every process the caller can see. It is
// empty where there is no /proc.
func ReadProcs() Procs {
	ps := Procs{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			ps[pid] = p
		}
	}
	return ps
}

// Descendants lists the processes below roots: their children, theirs,
// and so on, each once. A process whose parent has exited is no longer
// below it (the kernel gives it another parent).
func (ps Procs) Descendants(roots ...int) []int {
	kids := map[int][]int{}
	for _, p := range ps {
		kids[p.PPID] = append(kids[p.PPID], p.PID)
	}
	var out []int
	seen := map[int]bool{}
	todo := slices.Clone(roots)
	for len(todo) > 0 {
		next := kids[todo[0]]
		todo = todo[1:]
		slices.Sort(next)
		for _, pid := range next {
			if !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
				todo = append(todo, pid)
			}
		}
	}
	return out
}

// readProc reads and parses /proc/PID/stat.
func readProc(pid int) (Proc, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Proc{}, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("sshdtest: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return Proc{}, fmt.Errorf("sshdtest: /proc/%d/stat: %d fields, want at least 22", pid, len(f)+2)
	}
	ticks := func(k int) time.Duration {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return time.Duration(v) * clockTick
	}
	p := Proc{PID: pid, State: f[0][0]}
	p.PPID, _ = strconv.Atoi(f[1])
	p.Start, _ = strconv.ParseUint(f[19], 10, 64)
	p.CPU = ticks(11) + ticks(12)
	p.ChildCPU = ticks(13) + ticks(14)
	return p, nil
}

// member is one process of a tree being stopped, held by a pidfd where
// the kernel has them (os.FindProcess) and known by its start time, so
// that no signal reaches another process that reused its pid.
type member struct {
	pid   int
	start uint64
	proc  *os.Process
}

// track returns a member for pid, which started at start, or false if
// that process has gone.
func track(pid int, start uint64) (*member, bool) {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, false
	}
	m := &member{pid: pid, start: start, proc: proc}
	// Checked after the pidfd is open: if the process is still the one
	// seen, the pidfd holds it.
	if m.gone() {
		proc.Release()
		return nil, false
	}
	return m, true
}

// gone reports whether the process has exited: no longer in /proc, a
// zombie, or its pid now names another process.
func (m *member) gone() bool {
	p, err := readProc(m.pid)
	return err != nil || p.Start != m.start || p.State == 'Z' || p.State == 'X'
}

// stopped reports whether the process is stopped (SIGSTOP) or gone.
func (m *member) stopped() bool {
	p, err := readProc(m.pid)
	return err != nil || p.Start != m.start || p.State == 'T' || p.State == 'Z' || p.State == 'X'
}

func (m *member) signal(sig syscall.Signal) {
	if !m.gone() {
		m.proc.Signal(sig)
	}
}

// freeze stops (SIGSTOP) every process below the stopped process root,
// and returns them. A stopped process forks no more, so once a look at
// /proc finds no new descendant, the tree is whole. It gives up at
// deadline with what it has.
func freeze(root int, deadline time.Time) []*member {
	var all []*member
	seen := map[int]bool{}
	for {
		ps := ReadProcs()
		var added []*member
		for _, pid := range ps.Descendants(root) {
			if seen[pid] {
				continue
			}
			m, ok := track(pid, ps[pid].Start)
			if !ok {
				continue
			}
			seen[pid] = true
			m.signal(syscall.SIGSTOP)
			added = append(added, m)
		}
		all = append(all, added...)
		if len(added) == 0 || !await(deadline, func() bool { return allOf(added, (*member).stopped) }) {
			return all
		}
	}
}

// allOf reports whether f holds for every member.
func allOf(ms []*member, f func(*member) bool) bool {
	for _, m := range ms {
		if !f(m) {
			return false
		}
	}
	return true
}

// await polls cond until it holds (true) or deadline passes (false).
func await(deadline time.Time, cond func() bool) bool {
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// pollInterval is how often the package looks at /proc or at sshd's log
// while it waits for something.
const pollInterval = 5 * time.Millisecond

// Cmdline returns the arguments of process pid; nil for a zombie or a
// process that is gone.
func Cmdline(pid int) []string {
	return nulSplit(readProcFile(pid, "cmdline"))
}

// Environ returns the environment of process pid, when the caller may read
// it. A process that forked and has not yet called exec still has its
// parent's.
func Environ(pid int) []string {
	return nulSplit(readProcFile(pid, "environ"))
}

// FindProcs lists the live processes, other than the caller, whose
// arguments make match true. Zombies have no arguments and never match.
func FindProcs(match func(pid int, args []string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if args := Cmdline(pid); len(args) > 0 && match(pid, args) {
			out = append(out, pid)
		}
	}
	return out
}

func readProcFile(pid int, name string) []byte {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
	return b
}

func nulSplit(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

// SignalProcs sends sig to every live process, other than the caller, that
// match selects, and returns how many it signalled. Each process is held
// (by pidfd where the kernel has them) and checked again before the signal,
// so that a process id reused in between is never signalled.
func SignalProcs(match func(pid int, args []string) bool, sig syscall.Signal) int {
	ps := ReadProcs()
	n := 0
	for _, pid := range FindProcs(match) {
		m, ok := track(pid, ps[pid].Start)
		if !ok {
			continue
		}
		if args := Cmdline(pid); len(args) > 0 && match(pid, args) && !m.gone() {
			if m.proc.Signal(sig) == nil {
				n++
			}
		}
		m.proc.Release()
	}
	return n
}

// StopProcs makes every live process that match selects exit, and waits
// until none is left: ask, when not nil, is called while any runs (to ask
// them to finish); after term they get SIGTERM, after term+5 s SIGKILL, and
// after term+10 s StopProcs gives up with an error naming them.
func StopProcs(match func(pid int, args []string) bool, ask func(), term time.Duration) error {
	start := time.Now()
	for quiet := 0; quiet < 2; {
		pids := FindProcs(match)
		if len(pids) == 0 {
			quiet++ // twice in a row: none was between two states
			time.Sleep(pollInterval)
			continue
		}
		quiet = 0
		if ask != nil {
			ask()
		}
		switch waited := time.Since(start); {
		case waited > term+10*time.Second:
			return fmt.Errorf("sshdtest: processes still running after %s: %v", waited.Round(time.Second), pids)
		case waited > term+5*time.Second:
			SignalProcs(match, syscall.SIGKILL)
		case waited >= term:
			SignalProcs(match, syscall.SIGTERM)
		}
		time.Sleep(2 * pollInterval)
	}
	return nil
}
