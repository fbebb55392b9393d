// Command banpush-bench measures banpush against the ssh(1) recipes it
// replaces, side by side, on real OpenSSH sshd peers on 127.0.0.1, and
// prints a markdown table.
//
// It builds banpush as released (CGO_ENABLED=0, -trimpath) into a
// temporary directory, with the floor of scenario 1 (a Go program that only
// prints), starts the peers (from package sshdtest as in the integration
// tests, each with its own port, authorized_keys line from 'banpush
// authorize' and receive log; the first -peers with an sshd each, the
// fan-out's 16 ports to an sshd), and runs
// each scenario for banpush and for the baselines against the same peers
// and receivers:
//
//   - seed loop: bash runs ssh to each peer in turn, as an actionban would;
//   - parallel ssh: the same, every peer at once (& and wait);
//   - ControlMaster: ssh over ControlMaster connections opened beforehand,
//     the best case for ssh(1).
//
// Scenario 8 is on one receiving host: received bans to the kernel
// through fail2ban's action against 'banpush firewall' (firewall.go).
//
// Scenario 9, run only when named (-scenarios 9: it takes minutes), is
// scenario 3's burst carried to every peer's kernel, by 'banpush firewall'
// and by fail2ban (fleetfirewall.go).
//
// Scenario 7 has banpush beside itself: bans to the live peers while a
// third of the peers are bad (a closed port, a blackholed address, a
// tarpit), against the same with every peer up.
//
// It must run as root (sshd needs it to log in as a user) from inside the
// banpush module, with go, sshd, ssh and ssh-keygen installed. Every process
// it starts and every file it writes are removed when it ends, Ctrl-C
// included. It trusts the machine it runs on and nothing else: it only
// listens on and connects to 127.0.0.1.
//
//	go run ./cmd/banpush-bench [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/wire"
)

type options struct {
	peers         int
	fanout        int
	fanoutSmall   int
	reps          int
	coldReps      int
	fanoutReps    int
	burst         int
	burstBaseline int
	baselineReps  int
	scenarios     string
	timeout       time.Duration
	keep          bool
	receiver      string
	fwBans        int
}

func main() {
	var o options
	flag.IntVar(&o.peers, "peers", 10, "live peers in scenarios 1 to 4, 7 and 9")
	flag.IntVar(&o.fanout, "fanout", 500, "peers in scenario 5")
	flag.IntVar(&o.fanoutSmall, "fanout-small", 100, "peers in scenario 5's first size, for the growth to -fanout")
	flag.IntVar(&o.reps, "reps", 20, "repetitions of scenarios 1, 4, 6 and 7 (banpush side)")
	flag.IntVar(&o.coldReps, "cold-reps", 5, "repetitions of scenario 2 (each side)")
	flag.IntVar(&o.fanoutReps, "fanout-reps", 2, "repetitions of scenario 5 (banpush side)")
	flag.IntVar(&o.burst, "burst", 1000, "bans in the bursts of scenarios 3, 8 and 9")
	flag.IntVar(&o.burstBaseline, "burst-baseline", 10, "bans the parallel ssh baseline sends in scenario 3 (then extrapolated)")
	flag.IntVar(&o.baselineReps, "baseline-reps", 2, "repetitions of the slow baselines (seed loop in 1, parallel ssh in 5)")
	flag.IntVar(&o.fwBans, "fw-bans", 10000, "the large burst of scenario 8 (the fast path alone), and half the bans held at its last restart")
	flag.StringVar(&o.scenarios, "scenarios", "1,2,3,4,5,6,7,8", "scenarios to run, comma-separated (9, minutes long, runs only when named)")
	flag.DurationVar(&o.timeout, "timeout", 8*time.Minute, "stop everything after this long")
	flag.StringVar(&o.receiver, "receiver", "banpush-bench", "receiving account, shell /bin/sh as in production; created for the run (and deleted) if missing; root uses root's own shell and rc files")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, spools, sshd logs)")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "banpush-bench: error: %v\n", err)
		os.Exit(2)
	}
	if err := runBench(o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "banpush-bench: error: %v\n", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	switch {
	case o.peers < 2:
		return errors.New("-peers must be at least 2")
	case o.fanout < o.peers:
		return errors.New("-fanout must be at least -peers")
	case o.fanoutSmall < 1 || o.fanoutSmall > o.fanout:
		return errors.New("-fanout-small must be between 1 and -fanout")
	case o.reps < 1 || o.coldReps < 1 || o.fanoutReps < 1 || o.baselineReps < 1:
		return errors.New("repetitions must be at least 1")
	case o.burst < 1 || o.burstBaseline < 1 || o.burstBaseline > o.burst:
		return errors.New("-burst-baseline must be between 1 and -burst")
	case o.fwBans < 1:
		return errors.New("-fw-bans must be at least 1")
	case os.Geteuid() != 0:
		return errors.New("run as root: sshd must log the pusher in (sudo go run ./cmd/banpush-bench)")
	}
	for _, prog := range []string{sshdtest.SSHD, "ssh", "ssh-keygen", "go", "bash"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("%s not found: apt-get install openssh-server openssh-client bash, and Go", prog)
		}
	}
	return nil
}

func (o *options) want(n int) bool {
	return slices.Contains(strings.Split(o.scenarios, ","), fmt.Sprint(n))
}

func runBench(o options, stdout, stderr io.Writer) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cl := &cleanups{}
	defer cl.run()

	began := time.Now()
	load0 := loadAvg()
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "banpush-bench: %6.1fs "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
	}
	progress("building banpush")
	b, err := newBench(ctx, cl, o)
	if err != nil {
		return err
	}
	progress("starting %d peers", o.peers)
	if err := b.startPeers(o.peers); err != nil {
		return err
	}
	s10, err := b.newSetup("s10", b.peers[:o.peers])
	if err != nil {
		return err
	}
	steps := []struct {
		n int
		f func() error
	}{
		{1, b.s1Action},
		{2, func() error { return b.s2OneBan(s10) }},
		{3, func() error { return b.s3Burst(s10) }},
		{4, func() error { return b.s4Warm(s10) }},
		{5, b.s5FanOut},
		{6, b.s6Receiver},
		{7, func() error { return b.s7Partial(s10) }},
		{8, b.s8Firewall},
		{9, func() error { return b.s9FleetFirewall(s10) }},
	}
	// The table's rows are printed as each scenario ends, so that a run
	// cut short (a timeout, a Ctrl-C) still shows what it measured; a
	// scenario that fails gets a row saying so, and the next one runs.
	printHeader(stdout, b, o, load0)
	printed := 0
	var stopped error
	for _, st := range steps {
		if !o.want(st.n) {
			continue
		}
		progress("scenario %d", st.n)
		if err := st.f(); err != nil {
			b.rows = append(b.rows, row{scenario: fmt.Sprintf("%d. (failed)", st.n), banpush: "ERROR", baseline: "-", ratio: "-", target: "-", met: "MISSED"})
			b.notes = append(b.notes, fmt.Sprintf("Scenario %d failed: %s", st.n, oneLine(err.Error())))
			if ctx.Err() != nil {
				stopped = fmt.Errorf("scenario %d: %w", st.n, ctx.Err())
			}
		}
		for _, r := range b.rows[printed:] {
			fmt.Fprintf(stdout, "| %s | %s | %s | %s | %s | %s |\n", r.scenario, r.banpush, r.baseline, r.ratio, r.target, r.met)
		}
		printed = len(b.rows)
		if stopped != nil {
			break
		}
	}
	progress("done")
	printFooter(stdout, b, loadAvg(), time.Since(began))
	return stopped
}

// row is one line of the table.
type row struct{ scenario, banpush, baseline, ratio, target, met string }

// printHeader prints what the table was measured on, and the table's
// head.
func printHeader(w io.Writer, b *bench, o options, load0 string) {
	fmt.Fprintf(w, "## banpush-bench, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d CPUs (%s), %s memory, kernel %s\n", runtime.NumCPU(), cpuModel(), memTotal(), kernel())
	fmt.Fprintf(w, "- OpenSSH: %s; Go: %s; banpush built with CGO_ENABLED=0 -trimpath\n", sshVersion(), goVersion())
	fmt.Fprintf(w, "- load average (1, 5, 15 min) at start: %s\n", load0)
	fmt.Fprintf(w, "- receivers: account %s, login shell %s (sshd runs the forced command through it)\n", b.acct.name, b.acct.shell)
	fmt.Fprintf(w, "- flags: -peers %d -fanout %d -fanout-small %d -reps %d -cold-reps %d -fanout-reps %d -burst %d -burst-baseline %d -baseline-reps %d -fw-bans %d\n\n",
		o.peers, o.fanout, o.fanoutSmall, o.reps, o.coldReps, o.fanoutReps, o.burst, o.burstBaseline, o.baselineReps, o.fwBans)
	fmt.Fprintln(w, "| scenario | banpush (median) | baseline (median) | ratio | target | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
}

// printFooter prints what follows the table: the load at the end, how the
// baselines and the CPU rows are measured, and the notes.
func printFooter(w io.Writer, b *bench, load1 string, took time.Duration) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Load average at the end: %s; the run took %s.\n\n", load1, took.Round(time.Second))
	fmt.Fprintln(w, "Baselines: seed loop = bash runs `ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=5 ... peer '"+wire.Ban.String()+"' <<< \"$ip\"` for each peer in turn (OpenSSH defaults otherwise, default key exchange); parallel ssh = the same with `&` and `wait`; ControlMaster = parallel ssh over ControlMaster connections opened beforehand (ControlPersist), the best case for ssh(1). Every baseline talks to the same sshd peers and `banpush receive` forced commands as banpush. Times run until the ban is in every peer's log (watched with inotify: each log is read when its directory changes), except scenario 1 (the action command's own run time). Ratio = banpush / baseline. Receivers run with a raised rate limit (--max-burst/--max-per-minute "+rateLimit+").")
	fmt.Fprintln(w, "\nCPU rows: pusher + peers, per ban. Pusher = `banpush push` and the background sender (or the baseline script with its ssh processes and, for ControlMaster, the master processes); peers = every process under the peers' sshd listeners (connection and session processes, the login shell, `banpush receive`), from a cgroup v2 per sshd (cpu.stat: every process counts, whoever reaps it), or without cgroup v2 from the listeners' reaped children (which misses the session process of an ssh(1) client's connection: sshd's monitor exits without reaping it after a client's disconnect). The split by program samples the same processes with perf(1), when it is installed. All peers share this machine's cores: their CPU is paid serially here and in parallel in real life.")
	for _, n := range b.notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(a)/float64(b))
}

func metIf(ok bool) string {
	if ok {
		return "yes"
	}
	return "MISSED"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

func fmtN(d time.Duration, n int) string { return fmt.Sprintf("%s (n=%d)", fmtDur(d), n) }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	kib := procMeminfo("MemTotal:")
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}

func procMeminfo(key string) int {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			var n int
			fmt.Sscan(strings.TrimSpace(l[len(key):]), &n)
			return n
		}
	}
	return 0
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func sshVersion() string {
	out, _ := exec.Command("ssh", "-V").CombinedOutput()
	return strings.TrimSpace(string(out))
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}
