package main

// Fault tests: peers that go away, senders and pushes killed with SIGKILL,
// many hosts pushing to one peer, a peer flooding another, a receiver that
// cannot write its log, and a damaged spool. Every test runs against real
// sshd peers, real receivers and real spools, and fails if a ban is lost, a
// log line is torn, or a peer gets more in than its token bucket allows.
//
// By default the tests run at a size that suits CI. The sizes of the
// documentation (a 30 s outage during 500 bans, 1000 bans with 20 kills,
// 100,000 addresses of flood) take a few minutes:
//
//	go test ./cmd/banpush -run Faults -banpush.long -v

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/status"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

var longFaults = flag.Bool("banpush.long", false, "run the fault tests (TestFaults*) at full size; takes minutes")

// faultSize returns short, or long under -banpush.long.
func faultSize[T any](short, long T) T {
	if *longFaults {
		return long
	}
	return short
}

// newFleet starts one receiving peer and n pushing hosts named
// prefix01, prefix02, ...: each host has its own key, inventory, known_hosts
// and spool, as n separate servers would, and the peer's authorized_keys
// has one 'banpush authorize' line per host, so that each host is a
// different --peer to the receiver (and has its own token bucket).
// Every host's inventory names the peer "peer1".
func newFleet(t *testing.T, n int, prefix string) (*peer, []*cluster) {
	t.Helper()
	sshdtest.Require(t)
	bin := banpushBin(t)
	recv := &peer{name: "peer1"}
	recv.log = filepath.Join(sshdtest.AccountDir(t), "received.log")
	stopProcsAtEnd(t)
	hosts := make([]*cluster, n)
	var keys strings.Builder
	for i := range hosts {
		c := &cluster{t: t, bin: bin, dir: t.TempDir()}
		c.inventory = filepath.Join(c.dir, "peers")
		c.spool = filepath.Join(c.dir, "spool")
		c.knownHost = filepath.Join(c.dir, "known_hosts")
		name := fmt.Sprintf("%s%02d", prefix, i+1)
		c.key, c.pub, _ = sshdtest.NewKey(t, c.dir, name, "")
		keys.WriteString(c.run(nil, "authorize", "--peer", name, "--log", recv.log, "--binary", bin, c.pub))
		c.peers = []*peer{recv}
		hosts[i] = c
	}
	recv.sshd = sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: keys.String()})
	for _, c := range hosts {
		writeFile(t, c.knownHost, recv.sshd.KnownHostsLines())
		writeFile(t, c.inventory, fmt.Sprintf("Host *\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  ConnectTimeout 5\n\nHost %s\n  HostName %s\n  Port %d\n",
			loginUser(t), c.key, c.knownHost, recv.name, recv.sshd.Host, recv.sshd.Port))
		t.Cleanup(c.stopSender)
	}
	return recv, hosts
}

// unlimited gives the pusher a token bucket on every peer far larger than
// any test pushes, for tests of crash safety: the resends that kills cause,
// or thousands of addresses, would otherwise meet the receivers' rate limit,
// which TestFaultsRateLimitKeepsQueue tests on its own.
func (c *cluster) unlimited() {
	c.t.Helper()
	for _, p := range c.peers {
		p.sshd.SetAuthorizedKeys(c.run(nil, "authorize", "--peer", "pusher", "--log", p.log, "--binary", c.bin,
			"--max-burst", "1000000", c.pub))
	}
}

// banpushExit runs banpush for c from any goroutine (it never calls t) and
// returns its exit code, or an error if it could not run or died of a signal.
func (c *cluster) banpushExit(ctx context.Context, args ...string) (code int, out string, err error) {
	cmd := c.cmd(ctx, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode(), b.String(), nil
	}
	return 0, b.String(), err
}

// duplicates returns the number of log lines beyond the first for each
// address in p's log, and the largest count of one address.
func duplicates(t *testing.T, p *peer) (dups, most int) {
	t.Helper()
	for _, n := range p.logged(t) {
		dups += n - 1
		most = max(most, n)
	}
	return dups, most
}

// logLines returns p's log split into lines; the log must end with a newline.
func logLines(t *testing.T, p *peer) []string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a partial line: %q", p.log, b[max(0, len(b)-100):])
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// queued returns the queue length status --json shows for each peer.
func (c *cluster) queued() map[string]int {
	c.t.Helper()
	var st status.Report
	out := c.run(nil, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("status --json: %v\n%s", err, out)
	}
	q := map[string]int{}
	for _, p := range st.Peers {
		q[p.Peer] = p.Queued
	}
	return q
}

// TestFaultsPeerOutage: one of 10 peers is down while bans are pushed, one
// push each, spread over the outage. The nine others get every ban
// meanwhile; the tenth gets every ban within 90 s of its return from the
// background sender alone (no flush), which retries it with a backoff
// capped at 30 s plus jitter.
func TestFaultsPeerOutage(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	outage := faultSize(10*time.Second, 30*time.Second)
	n := faultSize(100, 500)
	c := newCluster(t, 10)
	down := c.peers[9]
	bans := docAddrs(0x7100000, n)

	down.sshd.Stop()
	start := time.Now()
	for i, a := range bans {
		time.Sleep(time.Until(start.Add(outage * time.Duration(i) / time.Duration(n))))
		c.run(nil, "push", "--jail", "sshd", a)
	}
	c.waitLogged(c.peers[:9], bans, 60*time.Second)
	if got := len(down.logged(t)); got != 0 {
		t.Fatalf("%s got %d bans while its sshd was stopped", down.name, got)
	}
	time.Sleep(time.Until(start.Add(outage)))
	down.sshd.Start()
	back := time.Now()
	took := c.waitLogged([]*peer{down}, bans, 90*time.Second)
	t.Logf("%s down for %s during %d pushes; all %d bans in its log %s after its return, without flush",
		down.name, back.Sub(start).Round(time.Millisecond), n, n, took.Round(time.Millisecond))
	c.waitLogged(c.peers, bans, time.Second)
	for _, p := range c.peers {
		if d, _ := duplicates(t, p); d != 0 {
			t.Errorf("%s: %d duplicate lines with no sender killed, want 0", p.name, d)
		}
	}
}

// TestFaultsSenderKilled: the background sender is killed with SIGKILL at
// random moments, at least 20 times, during a burst of single-ban pushes;
// flush then delivers every ban to every peer. Each kill may resend at most
// the batch in flight to each peer, so a peer's duplicate lines are at most
// the sum, over the kills, of min(batch size, bans pushed by then). (A
// sender killed before its first acknowledgement leaves the cursor where it
// was, so its batch in flight is everything queued since: kills that come
// often make the next batch large.)
func TestFaultsSenderKilled(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	n := faultSize(300, 1000)
	const wantKills = 20
	every := n / (wantKills * 3 / 2) // 30 attempts: some find no sender running
	c := newCluster(t, 3)
	c.unlimited()
	bans := docAddrs(0x7200000, n)
	kills, bound := 0, 0
	for i, a := range bans {
		c.run(nil, "push", a)
		if i%every == every-1 {
			// Most kills land while a batch is in flight (dial, send,
			// the receiver's fsync), some after it is acknowledged.
			time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
			if killSender(c) {
				kills++
				bound += min(deliver.DefaultBatchRecords, i+1)
			}
		}
	}
	if kills < wantKills {
		t.Fatalf("killed the sender %d times, the test needs at least %d", kills, wantKills)
	}
	c.stopSender()
	c.run(nil, "flush", "--timeout", "60s")
	c.waitLogged(c.peers, bans, time.Second)
	for _, p := range c.peers {
		dups, most := duplicates(t, p)
		t.Logf("%s: %d bans, %d duplicate lines (bound %d), at most %d lines for one address", p.name, n, dups, bound, most)
		if dups > bound {
			t.Errorf("%s: %d duplicate lines after %d kills, more than the batches in flight allow (%d)", p.name, dups, kills, bound)
		}
		if most > kills+1 {
			t.Errorf("%s: an address logged %d times after %d kills", p.name, most, kills)
		}
	}
	for peer, q := range c.queued() {
		if q != 0 {
			t.Errorf("status: %d still queued for %s after flush", q, peer)
		}
	}
	t.Logf("killed the sender %d times during %d pushes to %d peers; no ban lost", kills, n, len(c.peers))
}

// TestFaultsPushKilled: pushes of many addresses each, run several at once,
// are killed with SIGKILL at random moments, some in the middle of their
// journal append. The spool stays readable (status works), flush delivers
// every address of every push that exited 0, and since no sender was
// killed, nothing is delivered twice (the bound is zero batches in flight).
func TestFaultsPushKilled(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	waves := faultSize(25, 100)
	const perWave, perPush = 8, 64 // 64 addresses: an append of about 5 KiB, over two pages
	c := newCluster(t, 2)
	c.unlimited()
	type push struct {
		addrs []string
		code  int
		err   error
	}
	var pushes []*push
	next := 0x7300000
	// Kill at a random moment up to maxDelay: about twice what a push takes
	// on this machine now, adjusted after each wave in which every push was
	// killed, or none was, so that both outcomes occur however loaded the
	// machine is.
	start := time.Now()
	c.run(nil, append([]string{"push", "--"}, docAddrs(next, perPush)...)...)
	next += perPush
	maxDelay := 2 * time.Since(start)
	for w := 0; w < waves; w++ {
		var wg sync.WaitGroup
		wave := make([]*push, 0, perWave)
		for i := 0; i < perWave; i++ {
			p := &push{addrs: docAddrs(next, perPush)}
			next += perPush
			pushes = append(pushes, p)
			wave = append(wave, p)
			wg.Add(1)
			delay := time.Duration(rand.Int64N(int64(maxDelay) + 1))
			go func() {
				defer wg.Done()
				cmd := c.cmd(context.Background(), append([]string{"push", "--"}, p.addrs...)...)
				if p.err = cmd.Start(); p.err != nil {
					return
				}
				time.Sleep(delay)
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				p.code = 0
				var ee *exec.ExitError
				switch {
				case errors.As(err, &ee) && ee.ExitCode() < 0:
					p.code = -1 // killed
				case errors.As(err, &ee):
					p.code = ee.ExitCode()
				case err != nil:
					p.err = err
				}
			}()
		}
		wg.Wait()
		killedAll, killedNone := true, true
		for _, p := range wave {
			killedAll = killedAll && p.code == -1
			killedNone = killedNone && p.code != -1
		}
		switch {
		case killedAll:
			maxDelay *= 2
		case killedNone:
			maxDelay /= 2
		}
	}
	// The spool must still be readable.
	c.queued()
	c.stopSender()
	c.run(nil, "flush", "--timeout", "60s")

	var done, killed []*push
	for _, p := range pushes {
		switch {
		case p.err != nil:
			t.Fatal(p.err)
		case p.code == 0:
			done = append(done, p)
		case p.code == -1:
			killed = append(killed, p)
		default:
			t.Errorf("a push exited %d", p.code)
		}
	}
	if len(done) == 0 || len(killed) == 0 {
		t.Fatalf("%d pushes exited 0 and %d were killed: the test needs both", len(done), len(killed))
	}
	var want []string
	for _, p := range done {
		want = append(want, p.addrs...)
	}
	c.waitLogged(c.peers, want, time.Second)
	got := c.peers[0].logged(t)
	partial, whole := 0, 0
	for _, p := range killed {
		k := 0
		for _, a := range p.addrs {
			if got[a] > 0 {
				k++
			}
		}
		switch k {
		case perPush:
			whole++
		case 0:
		default:
			partial++
		}
	}
	for _, p := range c.peers {
		if d, _ := duplicates(t, p); d != 0 {
			t.Errorf("%s: %d duplicate lines with no sender killed, want 0", p.name, d)
		}
	}
	for peer, q := range c.queued() {
		if q != 0 {
			t.Errorf("status: %d still queued for %s after flush", q, peer)
		}
	}
	t.Logf("%d pushes of %d addresses: %d exited 0 (all delivered), %d killed: %d of those were queued whole, %d in part (killed mid-append), %d not at all; kills up to %s after the start at the end",
		len(pushes), perPush, len(done), len(killed), whole, partial, len(killed)-whole-partial, maxDelay)
}

// TestFaultsContention: 20 hosts, each with its own key and spool, push 50
// bans each to one peer at the same moment, against sshd's default
// MaxStartups (10:30:100). All 1000 lines arrive, none torn, none mixed with
// another (each line names the host its address came from), and the real
// fail2ban filter matches every one.
func TestFaultsContention(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	testenv.Need(t, testenv.Command("fail2ban-regex", "fail2ban"))
	const hosts, each = 20, 50
	recv, fleet := newFleet(t, hosts, "host")
	owner := map[string]string{} // address -> host
	var all []string
	for i := range fleet {
		for _, a := range docAddrs(0x7400000+i*each, each) {
			owner[a] = fmt.Sprintf("host%02d", i+1)
			all = append(all, a)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, hosts)
	ready := make(chan struct{}) // all hosts start at once
	for i, c := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			for _, a := range docAddrs(0x7400000+i*each, each) {
				code, out, err := c.banpushExit(context.Background(), "push", "--jail", "sshd", a)
				if err != nil || code != 0 {
					errs <- fmt.Errorf("host%02d: push %s: exit %d, %v: %s", i+1, a, code, err, out)
					return
				}
			}
		}()
	}
	close(ready)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The detached senders deliver; give them a bounded time, then flush
	// whatever they have not delivered.
	deadline := time.Now().Add(60 * time.Second)
	for len(recv.logged(t)) < len(all) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	fromSenders := len(recv.logged(t))
	flushed := 0
	if fromSenders < len(all) {
		for _, c := range fleet {
			c.stopSender()
			c.run(nil, "flush", "--timeout", "60s")
			flushed++
		}
	}
	got := recv.logged(t)
	for _, a := range all {
		if got[a] != 1 {
			t.Errorf("%s logged %d times, want 1", a, got[a])
		}
	}
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d banpush: ban (\S+) peer=(host\d\d) jail=sshd$`)
	lines := logLines(t, recv)
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("malformed line %q", l)
			continue
		}
		if owner[m[1]] != m[2] {
			t.Errorf("line %q: %s was pushed by %s", l, m[1], owner[m[1]])
		}
	}
	if len(lines) != len(all) {
		t.Errorf("%d lines in the log, want %d", len(lines), len(all))
	}
	matched, missed, _ := testenv.Fail2banRegex(t, recv.log, filepath.Join("..", "..", "contrib", "fail2ban", "filter.d", "banpush.conf"))
	if matched != len(all) || missed != 0 {
		t.Errorf("fail2ban-regex: %d matched, %d missed; want %d matched, 0 missed", matched, missed, len(all))
	}
	t.Logf("%d hosts x %d pushes: %d lines delivered by the background senders within 60 s, flush run on %d hosts; %d sshd connections, %d dropped past MaxStartups; fail2ban-regex matched %d, missed %d",
		hosts, each, fromSenders, flushed, recv.sshd.Connections(), strings.Count(recv.sshd.Log(), "past MaxStartups"), matched, missed)
}

// TestFaultsFlood: a compromised host offers its peer a flood of addresses
// through real sshd, with the OpenSSH client and the request banpush
// itself sends, in batches, two connections at a time. The peer accepts no
// more than the host's token bucket allows (a burst of 2000, then 120 a
// minute, for the time the flood took), stays responsive to another host
// (whose push --wait succeeds during the flood), and its log grows by no
// more than that.
func TestFaultsFlood(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	offered := faultSize(20000, 100000)
	batch := faultSize(5000, 10000)
	recv, hosts := newFleet(t, 2, "host")
	evil, good := hosts[0], hosts[1]

	batches := make(chan []byte, offered/batch)
	for i := 0; i < offered/batch; i++ {
		var b []byte
		for _, a := range docAddrs(0x7500000+i*batch, batch) {
			b = record.Record{Addr: netip.MustParseAddr(a), Jail: "sshd"}.AppendText(b)
			b = append(b, '\n')
		}
		batches <- b
	}
	close(batches)

	var accepted, sent atomic.Int64
	first := make(chan struct{})
	var once sync.Once
	answer := regexp.MustCompile(`^` + wire.OK + ` accepted=(\d+) refused=(\d+)(?: limited=\d+ limited_from=\d+)?\n$`)
	var wg sync.WaitGroup
	errs := make(chan error, offered/batch)
	start := time.Now()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				cmd := exec.Command("ssh", append(recv.sshd.SSHArgs(evil.key, evil.knownHost), wire.Ban.String())...)
				cmd.Stdin = bytes.NewReader(b)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				m := answer.FindSubmatch(out)
				if err != nil || m == nil {
					errs <- fmt.Errorf("flood batch: %v, answer %q, stderr %q", err, out, stderr.Bytes())
					continue
				}
				n, _ := strconv.Atoi(string(m[1]))
				accepted.Add(int64(n))
				sent.Add(int64(batch))
				once.Do(func() { close(first) })
			}
		}()
	}
	// Another host pushes while the flood goes on.
	select {
	case <-first:
	case <-time.After(2 * time.Minute):
		t.Fatal("no flood batch was answered in 2 minutes")
	}
	goodAddr := "203.0.113.77"
	out := good.run(nil, "push", "--wait", "--timeout", "30s", goodAddr)
	sentBefore := sent.Load()
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !strings.Contains(out, "ok") {
		t.Errorf("push --wait during the flood: %q", out)
	}

	bound := receive.DefaultMaxBurst + int(elapsed.Seconds()*receive.DefaultMaxPerMinute/60)
	got := recv.logged(t)
	fromEvil, fromGood := 0, 0
	for _, l := range logLines(t, recv) {
		switch {
		case strings.Contains(l, " peer=host01 "):
			fromEvil++
		case strings.Contains(l, " peer=host02"):
			fromGood++
		default:
			t.Errorf("line from neither host: %q", l)
		}
	}
	t.Logf("offered %d addresses in %s (%d of them before the other host's push --wait returned): %d accepted, log has %d of them; bound %d + %d/min x %s = %d",
		offered, elapsed.Round(time.Millisecond), sentBefore, accepted.Load(), fromEvil, receive.DefaultMaxBurst, receive.DefaultMaxPerMinute, elapsed.Round(time.Millisecond), bound)
	if fromEvil > bound || int(accepted.Load()) > bound {
		t.Errorf("flooding host got %d lines into the log (answers said %d), bound %d", fromEvil, accepted.Load(), bound)
	}
	if fromEvil < receive.DefaultMaxBurst || int64(fromEvil) != accepted.Load() {
		t.Errorf("flooding host: %d lines in the log, answers said %d accepted; want the answers' count and at least the burst %d",
			fromEvil, accepted.Load(), receive.DefaultMaxBurst)
	}
	if got[goodAddr] != 1 || fromGood != 1 {
		t.Errorf("the other host's ban: %d lines, want 1", got[goodAddr])
	}
	if n := len(got); n > bound+1 {
		t.Errorf("log has %d addresses, more than the bound %d + 1", n, bound)
	}
	if sentBefore == int64(offered) {
		t.Logf("note: the flood was over before the other host's push returned")
	}
}

// TestFaultsLogUnwritable: the receiving peer's log cannot be written
// (its file system is full; the log file is read-only). The receiver exits
// 73, push --wait reports the peer receiver-cannot-write (not busy: waiting
// does not fix it) and exits 3, the bans stay queued, the log has no
// partial line, and flush delivers them once the problem is fixed. A
// read-only log is found by peers check too; a full disk only by a write.
func TestFaultsLogUnwritable(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	testenv.Need(t, testenv.Root("mounts a tmpfs and a read-only bind mount"))
	tests := []struct {
		name      string
		brake     func(t *testing.T, dir, log string) (fix func())
		checkSees bool // peers check finds it without writing
	}{
		{"tmpfs full", fillFS, false},
		{"read-only log file", readOnlyFile, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 1)
			p := c.peers[0]
			dir := filepath.Join(t.TempDir(), "fs")
			mount(t, "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir)
			sshdtest.GiveAccount(t, dir)
			p.log = filepath.Join(dir, "received.log")
			p.sshd.SetAuthorizedKeys(c.run(nil, "authorize", "--peer", "pusher", "--log", p.log, "--binary", c.bin, c.pub))

			// Some lines first, so that the log's last page is part full
			// and a failed write can leave part of a batch behind.
			before := docAddrs(0x7600000+i*0x1000, 7)
			c.run(nil, append([]string{"push", "--wait", "--"}, before...)...)
			c.waitLogged(c.peers, before, time.Second)
			logBefore, err := os.ReadFile(p.log)
			if err != nil {
				t.Fatal(err)
			}

			fix := tt.brake(t, dir, p.log)
			bans := docAddrs(0x7600100+i*0x1000, 100) // a batch of about 6 KiB
			var batch []byte
			for _, a := range bans {
				batch = append(batch, a+"\n"...)
			}
			if got := sshExit(t, p, c.key, c.knownHost, wire.Ban.String(), batch); got != exitCannotWrite {
				t.Errorf("receiver: exit %d, want %d", got, exitCannotWrite)
			}
			out := c.run(code(exitPeers), append([]string{"push", "--wait", "--timeout", "3s", "--"}, bans...)...)
			if !regexp.MustCompile(`(?m)^peer1 +receiver-cannot-write .*cannot write the log`).MatchString(out) {
				t.Errorf("push --wait report:\n%s\nwant peer1 receiver-cannot-write (receiver exit 73)", out)
			}
			wantCheck := exitOK
			if tt.checkSees {
				wantCheck = exitPeers
			}
			if r := c.check(wantCheck)[p.name]; (r.Result == "receiver-cannot-write") != tt.checkSees {
				t.Errorf("peers check: got %q (%s); want receiver-cannot-write %v", r.Result, r.Error, tt.checkSees)
			}
			if q := c.queued()[p.name]; q != len(bans) {
				t.Errorf("status: %d queued, want %d", q, len(bans))
			}
			// A receiver whose pusher gave up may still be running: let it
			// finish (and fail) before the problem is fixed.
			waitReceivers(t, p)
			if logNow, _ := os.ReadFile(p.log); !bytes.Equal(logNow, logBefore) {
				t.Errorf("the failed writes changed the log:\nbefore %q\nafter  %q", logBefore, logNow)
			}

			fix()
			c.run(nil, "flush", "--timeout", "30s")
			c.waitLogged(c.peers, append(before, bans...), time.Second)
			if n := len(logLines(t, p)); n != len(before)+len(bans) {
				t.Errorf("%d log lines, want %d", n, len(before)+len(bans))
			}
			if q := c.queued()[p.name]; q != 0 {
				t.Errorf("status after flush: %d queued, want 0", q)
			}
		})
	}
}

// sshExit sends request with stdin to p through its sshd with the OpenSSH
// client and returns the exit status the receiver passed back.
func sshExit(t *testing.T, p *peer, key, knownHosts, request string, stdin []byte) int {
	t.Helper()
	cmd := exec.Command("ssh", append(p.sshd.SSHArgs(key, knownHosts), request)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	return 0
}

// waitReceivers waits until no receiver that may write to p's log runs:
// nothing is left below p's sshd (a connection, its shell, a receiver not
// yet past its exec), and no process outside it runs a receive command
// line naming the log (a receiver that outlived its connection, as the
// account's shell runs it or once it has become banpush). A receiver whose
// pusher gave up can still be starting on a busy machine, and would write
// its batch once the test has fixed the log.
func waitReceivers(t *testing.T, p *peer) {
	t.Helper()
	receiver := func(_ int, args []string) bool {
		cmd := " " + strings.Join(args, " ") + " "
		return strings.Contains(cmd, " receive ") && strings.Contains(cmd, " --log "+p.log+" ")
	}
	for i := 0; ; i++ {
		ps := sshdtest.ReadProcs()
		var busy []int
		for _, pid := range ps.Descendants(p.sshd.Pid()) {
			if ps[pid].State != 'Z' {
				busy = append(busy, pid)
			}
		}
		busy = append(busy, sshdtest.FindProcs(receiver)...)
		if len(busy) == 0 {
			return
		}
		if i == 500 {
			t.Fatalf("receivers of %s still running after 10 s: %v", p.log, busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mount runs mount(8) with args, the last of which is the mount point
// (created if missing), and unmounts it when the test ends.
func mount(t *testing.T, args ...string) {
	t.Helper()
	point := args[len(args)-1]
	if _, err := os.Stat(point); os.IsNotExist(err) {
		if err := os.MkdirAll(point, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() { umount(t, point) })
}

// umount unmounts point if it is still mounted.
func umount(t *testing.T, point string) {
	t.Helper()
	if exec.Command("mountpoint", "-q", point).Run() != nil {
		return
	}
	if out, err := exec.Command("umount", point).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v\n%s", point, err, out)
	}
}

// fillFS fills the file system of dir with a filler file; fix removes it.
func fillFS(t *testing.T, dir, _ string) func() {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'x'}, 512)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
	f.Close()
	return func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// readOnlyFile bind-mounts the log read-only over itself (root ignores
// file modes); fix unmounts it.
func readOnlyFile(t *testing.T, _, log string) func() {
	t.Helper()
	mount(t, "--bind", log, log)
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", log).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v\n%s", err, out)
	}
	return func() { umount(t, log) }
}

// TestFaultsSpoolCorrupt: garbage in the middle of a journal segment and a
// segment cut short in the middle of its last record, while no sender runs.
// status still works and counts every readable record; flush, the first to
// read the damage, says it skipped damaged lines and delivers every readable
// record; later pushes are delivered.
func TestFaultsSpoolCorrupt(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	c := newCluster(t, 2)
	for _, p := range c.peers {
		p.sshd.Stop()
	}
	early, late, after := docAddrs(0x7700000, 20), docAddrs(0x7700100, 20), docAddrs(0x7700200, 20)
	for _, a := range append(append([]string{}, early...), late...) {
		c.run(nil, "push", a)
	}
	c.stopSender()
	segs, err := filepath.Glob(filepath.Join(c.spool, "journal", "*"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("journal segments %v, %v: want one", segs, err)
	}
	seg := segs[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) != len(early)+len(late)+1 || lines[len(lines)-1] != "" {
		t.Fatalf("journal has %d lines, want %d", len(lines)-1, len(early)+len(late))
	}
	// Garbage between the early and the late records: a text line and
	// binary bytes that hold newlines.
	garbage := "garbage that is no journal line\n"
	for i := range 300 {
		garbage += string(rune(byte(i * 7)))
	}
	garbage += "\n"
	damaged := strings.Join(lines[:len(early)], "") + garbage + strings.Join(lines[len(early):], "")
	// Cut the last record in half: it is lost, every other one is readable.
	damaged = damaged[:len(damaged)-20]
	writeFile(t, seg, damaged)
	readable := append(append([]string{}, early...), late[:len(late)-1]...)

	out, code, stderr := c.runCode("status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, stderr)
	}
	for peer, q := range c.queued() {
		if q != len(readable) {
			t.Errorf("status: %d queued for %s, want the %d readable records", q, peer, len(readable))
		}
	}
	for _, p := range c.peers {
		p.sshd.Start()
	}
	logBefore := c.senderLog()
	out, code, stderr = c.runCode("flush", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("flush: exit %d\n%s%s", code, out, stderr)
	}
	c.waitLogged(c.peers, readable, time.Second)
	if !strings.Contains(out+stderr, "corrupt line") && c.senderLog() == logBefore {
		t.Errorf("flush skipped damaged journal lines without a word: stdout %q, stderr %q, nothing new in %s", out, stderr, sender.LogPath(c.spool))
	}

	for _, a := range after {
		c.run(nil, "push", a)
	}
	c.waitLogged(c.peers, after, 30*time.Second)
	for _, p := range c.peers {
		if d, _ := duplicates(t, p); d != 0 {
			t.Errorf("%s: %d duplicate lines, want 0", p.name, d)
		}
	}
	c.stopSender()
	if log := c.senderLog(); !strings.Contains(log[len(logBefore):], "1 corrupt line") {
		t.Errorf("the sender did not log the torn record it skipped once the next push ended it:\n%s", log[len(logBefore):])
	}
}

// TestFaultsBatchCutShort: a pusher's connection dies in the middle of a
// batch (the sender is killed, the network drops), cutting the last record
// short: "203.0.113.77" arrives as "203.0.113.7". sshd then gives the
// receiver an end of input like any other, and the receiver must not ban
// the cut address - an innocent one - nor anything that is not a whole
// line. The pusher got no answer, so it sends the batch again.
func TestFaultsBatchCutShort(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	c := newCluster(t, 1)
	p := c.peers[0]
	pem, err := os.ReadFile(c.key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	addr := p.sshd.Addr()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:            p.sshd.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(p.sshd.HostKeys[0]),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start(wire.Ban.String()); err != nil {
		t.Fatal(err)
	}
	// The receiver runs now; send the batch up to the cut, then drop the
	// connection without a word, as a killed process would.
	if _, err := stdin.Write([]byte("198.51.100.1\n203.0.113.7")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitReceivers(t, p)
	got := p.logged(t)
	if got["203.0.113.7"] != 0 {
		t.Errorf("the receiver banned 203.0.113.7, the first bytes of a record cut short by a dropped connection (the log has %v)", got)
	}
	t.Logf("log after the dropped batch: %v", got)
}

// TestFaultsRateLimitKeepsQueue: an honest host queues more bans for a peer
// than the peer's token bucket holds (a burst of 2000). The peer refuses
// the excess as rate-limited; those bans must stay queued, to go out once
// the bucket has refilled, and not be dropped as if the peer had refused
// them for good.
func TestFaultsRateLimitKeepsQueue(t *testing.T) {
	testenv.Slow(t)
	t.Parallel()
	c := newCluster(t, 1)
	p := c.peers[0]
	const extra = 50
	bans := docAddrs(0x7a00000, receive.DefaultMaxBurst+extra)
	for i := 0; i < len(bans); i += 500 {
		c.run(nil, append([]string{"push", "--"}, bans[i:min(i+500, len(bans))]...)...)
	}
	c.stopSender()
	// The bucket refills at 2 a second: flush delivers the burst, then
	// reports the peer busy with the rest queued.
	out, code, stderr := c.runCode("flush", "--timeout", "5s")
	t.Logf("flush: exit %d\n%s%s", code, out, stderr)
	logged := len(p.logged(t))
	queued := c.queued()[p.name]
	if logged+queued != len(bans) {
		t.Errorf("%d bans pushed; %d in the peer's log and %d still queued: %d lost to the rate limit",
			len(bans), logged, queued, len(bans)-logged-queued)
	}
}
