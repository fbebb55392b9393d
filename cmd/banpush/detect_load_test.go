//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestFleetDetectLoad: fleet failure detection under load, on a
// certificate fleet whose one authorized_keys line has --fleet (T=12, K=3,
// W=1h). Every host runs 'banpush report-failures' on a fail2ban log of
// its own, which the test writes as fail2ban 1.0.2 does ("[sshd] Found
// ADDR - TIME"), 20 failures a second in all: attackers spread thinly
// over every host, and a few users that fail once on each of two hosts.
// The reports travel by the real sender, sshd and receiver.
//
// It checks that every host writes a fleet line for every attacker and
// none for a user, and that no host had more sessions from one peer than
// one a second over the run (the sender's FailGap); it prints per host the
// fleet lines, the sessions, the CPU of everything under its sshd and of
// its reporter, LOG.fleet's size and the largest receiver seen.
//
// CI runs 4 hosts and 20 attackers for 30 s; -banpush.long runs the
// acceptance's 10 hosts and 100 attackers for 2 minutes.
func TestFleetDetectLoad(t *testing.T) {
	testenv.Slow(t)
	hosts, attackers, users, run := 4, 20, 5, 30*time.Second
	if *longFaults {
		hosts, attackers, users, run = 10, 100, 10, 2*time.Minute
	}
	const rate = 20 // failures a second, over every host
	f := newCertFleet(t, hosts, "--fleet-failures", "12", "--fleet-hosts", "3", "--fleet-window", "1h")
	account := loginUser(t)

	// The reporters, one per host, each on its own fail2ban log.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reporters []*exec.Cmd
	for _, h := range f.hosts {
		flog := filepath.Join(h.dir, "fail2ban.log")
		writeFile(t, flog, "")
		cmd := f.cmd(ctx, h, "report-failures", "--fail2ban-log", flog, "--state", filepath.Join(h.dir, "report", "cursor"),
			"--account", account, "--log", h.log, "--name", h.name,
			"--fleet-failures", "12", "--fleet-hosts", "3", "--fleet-window", "1h")
		out, err := os.Create(filepath.Join(h.dir, "report-failures.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reporters = append(reporters, cmd)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for _, c := range reporters {
			_ = c.Wait()
		}
	}
	defer stop()
	for _, h := range f.hosts { // each reporter has its cursor: it follows its log
		waitFile(t, filepath.Join(h.dir, "report", "cursor"), 30*time.Second)
	}

	cpu0 := make([]float64, hosts)
	for i, h := range f.hosts {
		cpu0[i] = treeCPU(t, h.sshd.Daemon.Pid())
	}
	sampler := sampleReceivers(f.bin)

	// The failures: users first (each once on two hosts), then attackers,
	// each attacker's next failure on the next host.
	start := time.Now()
	var failures [][2]int // (host, address index)
	for u := range users {
		failures = append(failures, [2]int{u % hosts, attackers + u}, [2]int{(u + 1) % hosts, attackers + u})
	}
	for i := len(failures); i < int(run.Seconds())*rate; i++ {
		a := i % attackers
		failures = append(failures, [2]int{(i/attackers + a) % hosts, a})
	}
	addr := func(i int) string {
		if i < attackers {
			return fmt.Sprintf("203.0.113.%d", i+1)
		}
		return fmt.Sprintf("198.51.100.%d", i-attackers+1)
	}
	tick := time.NewTicker(time.Second / rate)
	for _, fl := range failures {
		<-tick.C
		now := time.Now().Format("2006-01-02 15:04:05")
		appendFile(t, filepath.Join(f.hosts[fl[0]].dir, "fail2ban.log"),
			fmt.Sprintf("%s,000 fail2ban.filter         [812]: INFO    [sshd] Found %s - %s\n", now, addr(fl[1]), now))
	}
	tick.Stop()
	wrote := time.Since(start)

	// Every host bans every attacker, within the time the last reports take.
	want := map[string]bool{}
	for a := range attackers {
		want[addr(a)] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range f.hosts {
		for {
			missing := 0
			got := fleetLines(t, h.log)
			for a := range want {
				if got[a] == 0 {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: no fleet line for %d of the %d attackers", h.name, missing, attackers)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	stop()
	rss := sampler.stop()
	elapsed := time.Since(start) // every session the logs hold began after start
	cpu := make([]float64, hosts)
	for i, h := range f.hosts {
		cpu[i] = treeCPU(t, h.sshd.Daemon.Pid()) - cpu0[i]
	}

	t.Logf("%d hosts, %d failures in %v (%d a second): %d attackers, %d users", hosts, len(failures), wrote.Round(time.Second), rate, attackers, users)
	t.Logf("%-5s %8s %9s %14s %12s %13s %11s %11s", "host", "fleet", "sessions", "most/peer/s", "sshd CPU", "reporter CPU", "LOG.fleet", "receiver")
	for i, h := range f.hosts {
		got := fleetLines(t, h.log)
		lines := 0
		for a, n := range got {
			lines += n
			if !want[a] {
				t.Errorf("%s: %d fleet lines for %s, a user that failed on two hosts only", h.name, n, a)
			}
		}
		// Each fail request to a peer starts a second after the last one
		// ended: in the elapsed time, at most one a second, and one.
		total, most := 0, 0
		for peer, n := range sessionsByPeer(sshdLog(t, h.sshd)) {
			total += n
			most = max(most, n)
			if n > int(elapsed/time.Second)+1 {
				t.Errorf("%s: %d sessions from %q in %v: more than one a second", h.name, n, peer, elapsed.Round(time.Second))
			}
		}
		rep := processCPU(reporters[i].ProcessState)
		fi, err := os.Stat(h.log + ".fleet")
		size := int64(0)
		if err == nil {
			size = fi.Size()
		}
		t.Logf("%-5s %8d %9d %14.2f %11.2fs %12.2fs %10dB %9.1fMiB", h.name, lines, total, float64(most)/elapsed.Seconds(), cpu[i], rep, size, float64(rss)/1024)
	}
	t.Logf("CPU: what sshd and the receivers under it used over the %v, and each reporter's own with the receivers it ran for its host; receiver: the largest resident set of a 'banpush receive' seen", wrote.Round(time.Second))
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	for end := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
	}
}

// fleetLines counts the fleet lines of a received log per address.
func fleetLines(t *testing.T, log string) map[string]int {
	t.Helper()
	got := map[string]int{}
	fh, err := os.Open(log)
	if err != nil {
		return got
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		l, err := logline.Parse(sc.Bytes())
		if err == nil && l.Kind == logline.Fleet {
			got[l.Record.Addr.String()]++
		}
	}
	return got
}

var (
	acceptedRE = regexp.MustCompile(`Accepted publickey for \S+ from \S+ port (\d+) ssh2: \S+ \S+ ID (\S+) `)
	sessionRE  = regexp.MustCompile(`Starting session: .* from \S+ port (\d+) id \d+`)
)

// sessionsByPeer counts, in an sshd log at LogLevel VERBOSE, the sessions
// of each connection's key ID (a certificate's): "Accepted publickey ...
// port P ... ID NAME", then "Starting session: ... port P id N" for each
// session of that connection.
func sessionsByPeer(log string) map[string]int {
	peer := map[string]string{} // client port -> key ID
	out := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if m := acceptedRE.FindStringSubmatch(l); m != nil {
			peer[m[1]] = m[2]
		} else if m := sessionRE.FindStringSubmatch(l); m != nil {
			out[peer[m[1]]]++
		}
	}
	return out
}

// treeCPU is the CPU, in seconds, that everything below pid has used so
// far: the children it reaped, and each process still running below it
// with the children that process reaped. Each process counts once: a
// finished one in the times of the process that reaped it.
func treeCPU(t *testing.T, pid int) float64 {
	t.Helper()
	ticks := cpuTicks(pid, false)
	for _, p := range sshdtest.ReadProcs().Descendants(pid) {
		ticks += cpuTicks(p, true)
	}
	return ticks / 100 // USER_HZ
}

// cpuTicks is a process's reaped children's CPU, and its own with own, in
// clock ticks; 0 for a process gone.
func cpuTicks(pid int, own bool) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(string(b), ')')
	if err != nil || i < 0 || i+2 > len(b) {
		return 0
	}
	f := strings.Fields(string(b[i+2:])) // f[0] is field 3, the state
	if len(f) < 15 {
		return 0
	}
	var n float64
	fields := []int{13, 14} // cutime, cstime: fields 16 and 17
	if own {
		fields = append(fields, 11, 12) // utime, stime: fields 14 and 15
	}
	for _, k := range fields {
		v, _ := strconv.ParseFloat(f[k], 64)
		n += v
	}
	return n
}

// processCPU is the CPU, in seconds, of an ended process and its children.
func processCPU(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// receiverSampler watches the receivers of bin while they run.
type receiverSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	max  int64 // KiB
}

// sampleReceivers records, every 20 ms, the largest peak resident set of
// a running 'bin receive'.
func sampleReceivers(bin string) *receiverSampler {
	s := &receiverSampler{done: make(chan struct{})}
	s.wg.Go(func() {
		for {
			select {
			case <-s.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				args := strings.Split(string(cmd), "\x00")
				if len(args) < 2 || args[0] != bin || args[1] != "receive" {
					continue
				}
				status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				for _, l := range strings.Split(string(status), "\n") {
					if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
						s.mu.Lock()
						s.max = max(s.max, kb)
						s.mu.Unlock()
					}
				}
			}
		}
	})
	return s
}

func (s *receiverSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.max
}
