package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/wire"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Scenario 8: received bans to the kernel, the fail2ban path against the
// fast path ('banpush firewall'). One received log, written by the real
// receiver ('banpush receive', as sshd runs it for a peer), is followed by
// a private fail2ban with contrib's banpush jail and Debian's
// nftables-allports action, in a network namespace of its own, and by
// 'banpush firewall' with the same jail set up for it
// (banpush-firewall.local), in another: each bans into its own namespace's
// kernel, never the machine's. The clock runs from the receiver's start
// until the namespace's kernel set holds every address of the batch.

// netNS is a network namespace of the bench's own, held by a sleeping
// process that dies with the bench.
type netNS struct {
	pid int
	f   *os.File
}

// newNetNS makes one, removed by the cleanups (and with the bench: the
// holder gets SIGKILL when the bench dies).
func (b *bench) newNetNS() (*netNS, error) {
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // Pdeathsig follows the thread: keep it for good
		errc <- cmd.Start()
		select {}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	n := &netNS{pid: cmd.Process.Pid}
	b.cl.add(func() {
		if n.f != nil {
			n.f.Close()
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	f, err := os.Open(n.path())
	if err != nil {
		return nil, err
	}
	n.f = f
	return n, nil
}

func (n *netNS) path() string { return "/proc/" + strconv.Itoa(n.pid) + "/ns/net" }

// start starts a program in the namespace, killed by the cleanups and
// with the bench.
func (b *bench) startIn(n *netNS, out io.Writer, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.path(), "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.cl.add(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd, nil
}

// setCount counts the elements of the named sets of an nftables table in
// the namespace, or with want those of want only: 0 while the table or a
// set is missing.
func setCount(n *netNS, want map[netip.Addr]bool, family nftables.TableFamily, table string, sets ...string) int {
	c, err := nftables.New(nftables.WithNetNSFd(int(n.f.Fd())))
	if err != nil {
		return 0
	}
	total := 0
	for _, name := range sets {
		s, err := c.GetSetByName(&nftables.Table{Family: family, Name: table}, name)
		if err != nil {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			continue
		}
		if want == nil {
			total += len(els)
			continue
		}
		for _, el := range els {
			if a, ok := netip.AddrFromSlice(el.Key); ok && want[a] {
				total++
			}
		}
	}
	return total
}

// fastSet counts the addresses in the fast path's kernel set in n (with
// want, those of want only); fail2banSet the same in the sets of the
// banpush jail's nftables-allports action.
func fastSet(n *netNS, want map[netip.Addr]bool) int {
	return setCount(n, want, nftables.TableFamilyINet, nftset.Table, nftset.SetV4, nftset.SetV6)
}

func fail2banSet(n *netNS, want map[netip.Addr]bool) int {
	return setCount(n, want, nftables.TableFamilyINet, "f2b-table", "addr-set-banpush", "addr6-set-banpush")
}

// startFail2ban starts a private fail2ban-server with the configuration
// directory conf (see fail2banConf) in n, and returns once it answers.
func (b *bench) startFail2ban(n *netNS, conf string) (*exec.Cmd, error) {
	out := &syncBuffer{}
	server, err := b.startIn(n, out, "fail2ban-server", "-f", "-x", "-c", conf)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(conf, "run", "fail2ban.sock")
	if _, _, err := waitCount(func() int {
		if command(b.ctx, "fail2ban-client", "-s", sock, "ping").Run() == nil {
			return 1
		}
		return 0
	}, 1, time.Minute); err != nil {
		return nil, fmt.Errorf("the private fail2ban does not answer: %s", oneLine(out.String()))
	}
	return server, nil
}

// syncBuffer is a bytes.Buffer a running program writes to while the
// bench reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fail2banConf writes a fail2ban configuration directory: the machine's,
// without its jail.d, with contrib's banpush filter and jail watching log,
// and local, a jail.d/zz-bench.local.
func (b *bench) fail2banConf(dir, log, local string) error {
	if err := run(b.ctx, "cp", "-r", "/etc/fail2ban", dir); err != nil {
		return err
	}
	olds, _ := filepath.Glob(filepath.Join(dir, "jail.d", "*"))
	for _, f := range olds {
		os.Remove(f)
	}
	mod, err := command(b.ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return err
	}
	contrib := filepath.Join(filepath.Dir(strings.TrimSpace(string(mod))), "contrib", "fail2ban")
	for _, f := range []string{"filter.d/banpush.conf", "jail.d/banpush.conf"} {
		data, err := os.ReadFile(filepath.Join(contrib, f))
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte("/var/log/banpush/received.log"), []byte(log))
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return err
		}
	}
	state := filepath.Join(dir, "run")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	server := fmt.Sprintf("[Definition]\nlogtarget = %[1]s/fail2ban.log\nsocket = %[1]s/fail2ban.sock\npidfile = %[1]s/fail2ban.pid\ndbfile = %[1]s/fail2ban.sqlite3\n", state)
	if err := os.WriteFile(filepath.Join(dir, "fail2ban.local"), []byte(server), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "jail.d", "zz-bench.local"), []byte(local), 0o644)
}

// makeLog creates a received log, empty, where it is missing, as
// contrib/sshd/setup-receiver.sh does: fail2ban starts only once its
// jail's log exists, and 'banpush firewall' checks the log against the
// jail's logpath, which fail2ban leaves out while the file is missing.
func (b *bench) makeLog(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chown(path, b.acct.uid, b.acct.gid)
}

// receive writes addrs to log as one peer's batch, through the real
// receiver run as the receiving account.
func (b *bench) receive(log string, addrs []string) error {
	for len(addrs) > 0 {
		n := min(len(addrs), wire.MaxRecords)
		var batch bytes.Buffer
		for _, a := range addrs[:n] {
			fmt.Fprintf(&batch, "%s jail=sshd\n", a)
		}
		addrs = addrs[n:]
		cmd := command(b.ctx, b.bin, "receive", "--peer", "pusher", "--log", log, "--max-burst", rateLimit, "--max-per-minute", rateLimit)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "SSH_ORIGINAL_COMMAND=" + wire.Ban.String(), "SSH_CONNECTION=127.0.0.1 40000 127.0.0.1 22"}
		if c := b.acct.credential(); c != nil {
			cmd.SysProcAttr.Credential = c.Credential
		}
		cmd.Stdin = &batch
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), fmt.Sprintf("accepted=%d ", n)) {
			return fmt.Errorf("receive: %v: %s", err, oneLine(out.String()))
		}
	}
	return nil
}

// waitCount polls count until it reaches n, or timeout; it returns when
// it did, and what it counted last.
func waitCount(count func() int, n int, timeout time.Duration) (time.Time, int, error) {
	deadline := time.Now().Add(timeout)
	for {
		got := count()
		if got >= n {
			return time.Now(), got, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, got, fmt.Errorf("%d of %d in the kernel after %s", got, n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// firewallService runs 'banpush firewall' in ns until the cleanups or
// stop, and returns when its kernel set is ready (its first line).
type firewallService struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (b *bench) startFirewall(ns *netNS, log, state, conf string) (*firewallService, time.Duration, error) {
	pr, pw := io.Pipe()
	t := time.Now()
	cmd, err := b.startIn(ns, pw, b.bin, "firewall", "--log", log, "--state", state, "--fail2ban-config", conf, "--interval", "200ms")
	if err != nil {
		return nil, 0, err
	}
	s := &firewallService{cmd: cmd, done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		first := true
		var text strings.Builder
		for sc.Scan() {
			if first && strings.HasPrefix(sc.Text(), "kernel set ready") {
				ready <- nil
				first = false
			}
			if first {
				text.WriteString(sc.Text() + "; ")
			}
		}
		if first {
			ready <- fmt.Errorf("banpush firewall: %s", text.String())
		}
		close(s.done)
	}()
	go func() { cmd.Wait(); pw.Close() }()
	select {
	case err := <-ready:
		return s, time.Since(t), err
	case <-time.After(30 * time.Second):
		return s, 0, errors.New("banpush firewall: not ready after 30 s")
	}
}

// stop ends the service with sig and waits for it.
func (s *firewallService) stop(sig syscall.Signal) {
	syscall.Kill(-s.cmd.Process.Pid, sig)
	<-s.done
}

// needFirewallTools says what scenarios 8 and 9 need that the others do
// not.
func needFirewallTools() error {
	for _, prog := range []string{"fail2ban-server", "fail2ban-client", "nsenter"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("%s not found: apt-get install fail2ban util-linux", prog)
		}
	}
	return nil
}

func (b *bench) s8Firewall() error {
	if err := needFirewallTools(); err != nil {
		return err
	}
	dir := filepath.Join(b.dir, "s8")
	if err := os.MkdirAll(dir, 0o711); err != nil { // the account passes through to its log
		return err
	}
	if err := b.acct.ownedDir(filepath.Join(dir, "log")); err != nil {
		return err
	}
	log := filepath.Join(dir, "log", "received.log")
	if err := b.makeLog(log); err != nil {
		return err
	}
	slowConf, fastConf := filepath.Join(dir, "f2b-slow"), filepath.Join(dir, "f2b-fast")
	if err := b.fail2banConf(slowConf, log, "[banpush]\naction = nftables-allports[name=banpush]\n"); err != nil {
		return err
	}
	if err := b.fail2banConf(fastConf, log, "[banpush]\naction =\n"); err != nil {
		return err
	}
	slowNS, err := b.newNetNS()
	if err != nil {
		return err
	}
	fastNS, err := b.newNetNS()
	if err != nil {
		return err
	}
	server, err := b.startFail2ban(slowNS, slowConf)
	if err != nil {
		return err
	}
	state := filepath.Join(dir, "firewall", "cursor")
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return err
	}
	svc, _, err := b.startFirewall(fastNS, log, state, fastConf)
	if err != nil {
		return err
	}
	fast := func() int { return fastSet(fastNS, nil) }
	slow := func() int { return fail2banSet(slowNS, nil) }

	// The burst, both paths.
	n := b.o.burst
	t0 := time.Now()
	if err := b.receive(log, b.addr.take(n)); err != nil {
		return err
	}
	logged := time.Now()
	fastAt, _, err := waitCount(fast, n, 60*time.Second)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	slowAt, got, err := waitCount(slow, n, b.o.timeout/2)
	slowD := slowAt.Sub(t0)
	slowText := fmt.Sprintf("fail2ban path %s", fmtDur(slowD))
	if err != nil {
		slowText = fmt.Sprintf("fail2ban path: %d of %d after %s", got, n, b.o.timeout/2)
		slowD = 0
	}
	b.rows = append(b.rows, row{
		scenario: fmt.Sprintf("8. %d bans received, until all in the kernel (from the receiver's start; the log written in %s)", n, fmtDur(logged.Sub(t0))),
		banpush:  fmt.Sprintf("fast path %s", fmtDur(fastAt.Sub(t0))),
		baseline: slowText,
		ratio:    ratio(fastAt.Sub(t0), slowD),
		target:   "<= 2 s",
		met:      metIf(fastAt.Sub(t0) <= 2*time.Second),
	})
	syscall.Kill(-server.Process.Pid, syscall.SIGKILL) // the fail2ban path is not measured further

	// A large burst, the fast path alone, then restarts with the bans
	// held.
	held := n
	for i := range 2 {
		big := b.o.fwBans // then up to twice as many held
		if i == 1 {
			big = 2*b.o.fwBans - held
		}
		if big <= 0 {
			continue
		}
		t0 := time.Now()
		if err := b.receive(log, b.addr.take(big)); err != nil {
			return err
		}
		logged := time.Now()
		held += big
		at, _, err := waitCount(fast, held, 60*time.Second)
		if err != nil {
			return fmt.Errorf("fast path: %w", err)
		}
		b.rows = append(b.rows, row{
			scenario: fmt.Sprintf("8. %d bans received (%d held), fast path: from the log written to all in the kernel", big, held),
			banpush:  fmt.Sprintf("%s (%s from the receiver's start)", fmtDur(at.Sub(logged)), fmtDur(at.Sub(t0))),
			baseline: "-", ratio: "-",
			target: "<= 2 s",
			met:    metIf(at.Sub(logged) <= 2*time.Second),
		})
		// A restart: the set stays, the service checks it against its
		// state. A reboot: the set is gone; the service puts back every
		// ban in force.
		svc.stop(syscall.SIGTERM)
		var restart time.Duration
		svc, restart, err = b.startFirewall(fastNS, log, state, fastConf)
		if err != nil {
			return err
		}
		svc.stop(syscall.SIGKILL)
		set, err := nftset.Open(int(fastNS.f.Fd()))
		if err != nil {
			return err
		}
		err = set.Remove()
		set.Close()
		if err != nil {
			return err
		}
		t1 := time.Now()
		svc, _, err = b.startFirewall(fastNS, log, state, fastConf)
		if err != nil {
			return err
		}
		at, _, err = waitCount(fast, held, 60*time.Second)
		if err != nil {
			return fmt.Errorf("after a reboot: %w", err)
		}
		b.rows = append(b.rows, row{
			scenario: fmt.Sprintf("8. %d bans held: restart; reboot (set flushed, service started) until all back", held),
			banpush:  fmt.Sprintf("restart %s; reboot %s", fmtDur(restart), fmtDur(at.Sub(t1))),
			baseline: "-", ratio: "-",
			target: "<= 5 s",
			met:    metIf(at.Sub(t1) <= 5*time.Second && restart <= 5*time.Second),
		})
	}
	svc.stop(syscall.SIGKILL)
	return nil
}
