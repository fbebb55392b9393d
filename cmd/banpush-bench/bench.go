package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// rateLimit is given to every receiver: the bench sends thousands of bans
// from one pusher, far past the default token bucket.
const rateLimit = "1000000"

// bench is one run: the built banpush, the pusher's key, the peers and
// their logs.
type bench struct {
	ctx   context.Context
	cl    *cleanups
	o     options
	dir   string
	bin   string
	floor string // the floor program of scenario 1
	key   string // the pusher's private key
	pub   string
	kh    string   // known_hosts for every peer
	user  string   // the receiving account's name
	acct  *account // the receiving account
	peers []*peer  // every peer started so far
	logs  map[*peer]*banLog
	watch *logWatch // the logs' directories
	addr  addrs
	rows  []row
	notes []string
	// groups count the peers' CPU (nil: treeCPU is used instead).
	groups *cpuGroups
	// s1Dead is scenario 1's median with a peer that never answers, the
	// yardstick of scenario 4's target (0 if scenario 1 did not run).
	s1Dead time.Duration
}

// setup is one inventory and the spool that goes with it.
type setup struct {
	name      string
	inventory string
	spool     string
	peers     []*peer // live peers
	scripts   baselines
	// mastersOpen is set once the ControlMaster connections are open;
	// masters are their process ids.
	mastersOpen bool
	masters     []int
}

func newBench(ctx context.Context, cl *cleanups, o options) (*bench, error) {
	b := &bench{ctx: ctx, cl: cl, o: o, logs: map[*peer]*banLog{}}
	dir, err := os.MkdirTemp("", "banpush-bench-")
	if err != nil {
		return nil, err
	}
	b.dir = dir
	if b.watch, err = newLogWatch(); err != nil {
		return nil, err
	}
	if b.watch != nil {
		cl.add(b.watch.close)
	}
	// The receiving account must reach banpush and its log directories.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if o.keep {
		cl.add(func() { fmt.Fprintf(os.Stderr, "banpush-bench: kept %s\n", dir) })
	} else {
		cl.add(func() {
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintf(os.Stderr, "banpush-bench: %v\n", err)
			}
		})
	}
	// Last line of defence, run before the directory is removed: any
	// process still running from it (a sender, a receiver) is ours.
	cl.add(func() { stopProcsUnder(dir) })
	if err := b.build(); err != nil {
		return nil, err
	}
	if err := b.buildFloor(); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(b.bin), 0o755); err != nil {
		return nil, err
	}
	// The peers' CPU, counted whole (see cpuGroups); without cgroup v2
	// the bench falls back on the listeners' reaped children, and says so.
	if b.groups, err = newCPUGroups(cl); err != nil {
		b.notes = append(b.notes, fmt.Sprintf("The peers' CPU is the time of the children their sshd listeners reaped (%v): it undercounts ssh(1) clients, whose disconnect makes sshd's monitor exit without reaping its session process.", err))
		b.groups = nil
	}
	if b.acct, err = b.receiverAccount(o.receiver); err != nil {
		return nil, fmt.Errorf("receiving account %s: %w", o.receiver, err)
	}
	b.user = b.acct.name
	b.key = filepath.Join(dir, "pusher_ed25519")
	b.pub = b.key + ".pub"
	b.kh = filepath.Join(dir, "known_hosts")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pusher", "-f", b.key); err != nil {
		return nil, err
	}
	return b, nil
}

// build compiles banpush as it is released: CGO_ENABLED=0, -trimpath.
func (b *bench) build() error {
	out, err := command(b.ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return fmt.Errorf("run banpush-bench inside the banpush module (go env GOMOD: %v)", err)
	}
	b.bin = filepath.Join(b.dir, "bin", "banpush")
	cmd := command(b.ctx, "go", "build", "-trimpath", "-o", b.bin, "github.com/banpush/banpush/cmd/banpush")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// floorSource is the yardstick of scenario 1: a Go program that does
// nothing but print, built like banpush and run the same way.
const floorSource = `package main

import "os"

func main() { os.Stdout.WriteString("hi\n") }
`

// buildFloor builds the floor program into the bench's directory.
func (b *bench) buildFloor() error {
	dir := filepath.Join(b.dir, "floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(floorSource), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module floor\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	b.floor = filepath.Join(b.dir, "bin", "floor")
	cmd := command(b.ctx, "go", "build", "-trimpath", "-o", b.floor, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (floor): %v\n%s", err, out)
	}
	return nil
}

// startPeers brings the number of peers up to n, each with the
// authorized_keys line 'banpush authorize' writes for the pusher: the first
// -peers with an sshd each, the others portsPerSSHD to an sshd.
func (b *bench) startPeers(n int) error {
	for len(b.peers) < n {
		i := len(b.peers)
		k := 1
		if i >= b.o.peers {
			k = min(portsPerSSHD, n-i)
		}
		var names, keys, logs []string
		for j := i; j < i+k; j++ {
			name := fmt.Sprintf("peer%03d", j+1)
			dir := filepath.Join(b.dir, name)
			if err := os.MkdirAll(dir, 0o711); err != nil {
				return err
			}
			if err := b.acct.ownedDir(filepath.Join(dir, "log")); err != nil {
				return err
			}
			banLog := filepath.Join(dir, "log", "received.log")
			line, err := command(b.ctx, b.bin, "authorize", "--peer", "pusher", "--log", banLog,
				"--binary", b.bin, "--max-burst", rateLimit, "--max-per-minute", rateLimit, b.pub).Output()
			if err != nil {
				return fmt.Errorf("banpush authorize: %w", err)
			}
			names, keys, logs = append(names, name), append(keys, string(line)), append(logs, banLog)
		}
		var ps []*peer
		if k == 1 {
			p, err := startPeer(b.cl, names[0], filepath.Join(b.dir, names[0]), b.user, keys[0])
			if err != nil {
				return err
			}
			if err := b.countCPU(p.d); err != nil {
				return err
			}
			ps = []*peer{p}
		} else {
			dir := filepath.Join(b.dir, "sshd-"+names[0])
			if err := os.MkdirAll(dir, 0o711); err != nil {
				return err
			}
			var err error
			if ps, err = startShared(b.cl, names, dir, b.user, keys, b.acct.uid, b.acct.gid); err != nil {
				return err
			}
			if err := b.countCPU(ps[0].d); err != nil {
				return err
			}
		}
		var kh strings.Builder
		for j, p := range ps {
			p.banLog = logs[j]
			b.logs[p] = newBanLog(logs[j])
			if err := b.watch.add(b.logs[p]); err != nil {
				return err
			}
			b.peers = append(b.peers, p)
			kh.WriteString(p.knownHostsLines())
		}
		f, err := os.OpenFile(b.kh, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString(kh.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// newSetup writes an inventory of peers, and of a peer on each of the
// dead ports (peers that never answer, or refuse), and the baseline
// scripts for the same peers.
func (b *bench) newSetup(name string, peers []*peer, deadPorts ...int) (*setup, error) {
	s := &setup{
		name:      name,
		inventory: filepath.Join(b.dir, name, "peers"),
		spool:     filepath.Join(b.dir, name, "spool"),
		peers:     peers,
	}
	if err := os.MkdirAll(filepath.Dir(s.inventory), 0o700); err != nil {
		return nil, err
	}
	var inv strings.Builder
	fmt.Fprintf(&inv, "Host *\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  ConnectTimeout 5\n\n", b.user, b.key, b.kh)
	var ports []int
	for _, p := range peers {
		fmt.Fprintf(&inv, "Host %s\n  HostName 127.0.0.1\n  Port %d\n\n", p.name, p.port)
		ports = append(ports, p.port)
	}
	for i, port := range deadPorts {
		fmt.Fprintf(&inv, "Host dead%d\n  HostName 127.0.0.1\n  Port %d\n\n", i+1, port)
		ports = append(ports, port)
	}
	if err := os.WriteFile(s.inventory, []byte(inv.String()), 0o600); err != nil {
		return nil, err
	}
	var err error
	s.scripts, err = b.writeBaselines(filepath.Dir(s.inventory), ports)
	b.cl.add(func() { b.killSenders(s) })
	return s, err
}

// env is the environment of every banpush command of a setup. No agent:
// banpush and ssh both use the key file alone.
func (s *setup) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") && !strings.HasPrefix(kv, "BANPUSH_") {
			env = append(env, kv)
		}
	}
	return append(env, "BANPUSH_INVENTORY="+s.inventory, "BANPUSH_SPOOL="+s.spool)
}

// push runs 'banpush push IP' directly and returns the CPU time it used
// once it has exited.
func (b *bench) push(s *setup, args ...string) (time.Duration, error) {
	cmd := command(b.ctx, b.bin, append([]string{"push"}, args...)...)
	cmd.Env = s.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("banpush push: %v\n%s", err, out)
	}
	return cpuOf(cmd), nil
}

// cpuOf is the user+sys time of an exited command and of the children it
// waited for.
func cpuOf(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// shPush runs the action command the way fail2ban does: through /bin/sh,
// with its output read to EOF through a pipe.
func (b *bench) shPush(s *setup, ip string) (time.Duration, error) {
	d, _, err := b.timeSh(s.env(), `'`+b.bin+`' push "$1" 2>&1 | cat`, ip)
	return d, err
}

// timeSh runs /bin/sh -c script with $1 set to arg, and returns how long
// it took and the CPU time it and its children used.
func (b *bench) timeSh(env []string, script, arg string) (wall, cpu time.Duration, err error) {
	cmd := command(b.ctx, "/bin/sh", "-c", script, "sh", arg)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(start)
	if err != nil {
		return wall, 0, fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	return wall, cpuOf(cmd), nil
}

// senders lists the background senders of a setup's spool: banpush
// processes with "--spool SPOOL" and the word "send" in their argv.
func (s *setup) senders() []int {
	var out []int
	for _, pid := range findProcs("--spool", s.spool) {
		if slices.Contains(sshdtest.Cmdline(pid), "send") {
			out = append(out, pid)
		}
	}
	return out
}

// stopSender asks the setup's lingering sender to let go, as flush does
// (sender.Yield), and waits until it has exited, so that the next
// measurement starts cold. It asks again while it waits: a sender that has
// not yet taken the lock is not listening.
func (b *bench) stopSender(s *setup) error {
	if len(s.senders()) == 0 {
		return nil
	}
	sp, err := spool.Open(s.spool, spool.Options{})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(s.senders()) > 0 {
		if _, err := sender.Yield(sp); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("a sender did not stop within 15s of being asked to let go")
		}
		if !sleep(b.ctx, 10*time.Millisecond) {
			return b.ctx.Err()
		}
	}
	return nil
}

// killSenders ends the setup's senders by process id, on the way out.
func (b *bench) killSenders(s *setup) {
	for _, pid := range s.senders() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for i := 0; i < 200 && len(s.senders()) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range s.senders() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitLogged waits until every peer has every address.
func (b *bench) waitLogged(peers []*peer, addrs []string, timeout time.Duration) (time.Time, error) {
	poll := 100 * time.Millisecond // a safety net: the watch wakes it
	if b.watch == nil {
		poll = time.Millisecond
	}
	return waitLogged(b.ctx, peers, b.logs, b.watch, addrs, poll, timeout)
}

// connections counts the connections the peers' sshd have accepted so far.
func (b *bench) connections(peers []*peer) (int, error) {
	n := 0
	for _, p := range daemons(peers) {
		c, err := p.Connections()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
