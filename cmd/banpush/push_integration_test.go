package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/status"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

func code(n int) *int { return &n }

// TestPushWait: push --wait to three real peers exits 0 and every log has
// the address.
func TestPushWait(t *testing.T) {
	c := newCluster(t, 3)
	now := time.Now().Unix()
	out := c.run(nil, "push", "--wait", "--jail", "sshd", "--bantime", "600", "--time", fmt.Sprintf("%d.25", now), "203.0.113.7")
	for _, p := range c.peers {
		if !strings.Contains(out, p.name) || p.logged(t)["203.0.113.7"] != 1 {
			t.Errorf("%s: report %q, log %v", p.name, out, p.logged(t))
		}
		b, _ := os.ReadFile(p.log)
		if !strings.Contains(string(b), fmt.Sprintf(" banpush: ban 203.0.113.7 peer=pusher jail=sshd time=%d bantime=600\n", now)) {
			t.Errorf("%s log: %q", p.name, b)
		}
	}
	// Nothing is left queued, and status says so.
	var st status.Report
	if err := json.Unmarshal([]byte(c.run(nil, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Queued != 0 || p.Delivered != 1 || p.LastSuccess == nil {
			t.Errorf("status %+v, want nothing queued, 1 delivered", p)
		}
	}
}

// TestPushDetached: push as fail2ban runs it returns without waiting for
// delivery; the detached sender delivers to every peer.
func TestPushDetached(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	// fail2ban reads the command's stdout and stderr to EOF: "| cat" does
	// the same, so a sender that kept them open would hold this up.
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", `"$0" push --jail sshd 203.0.113.8 2>&1 | cat`, c.bin)
	sh.Env = c.cmd(ctx).Env
	out, err := sh.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("push: %v, output %q", err, out)
	}
	returned := time.Since(start)
	took := c.waitLogged(c.peers, []string{"203.0.113.8"}, 30*time.Second)
	t.Logf("push returned after %s; the ban was in every log %s later", returned, took)
}

// TestPushHostKeyMismatch: a peer whose known_hosts entry is wrong receives
// nothing; push --wait exits 3, and status shows the host key failure.
func TestPushHostKeyMismatch(t *testing.T) {
	c := newCluster(t, 2)
	bad := c.peers[1]
	// Replace peer2's key in known_hosts with another server's key.
	other := newCluster(t, 1).peers[0].sshd
	kh, _ := os.ReadFile(c.knownHost)
	lines := strings.Split(strings.TrimSuffix(string(kh), "\n"), "\n")
	prefix := fmt.Sprintf("[127.0.0.1]:%d ", bad.sshd.Port)
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			f := strings.Fields(other.KnownHostsLines())
			lines[i] = prefix + f[1] + " " + f[2]
		}
	}
	writeFile(t, c.knownHost, strings.Join(lines, "\n")+"\n")

	out := c.run(code(exitPeers), "push", "--wait", "--timeout", "10s", "203.0.113.9")
	if !strings.Contains(out, "hostkey-changed") {
		t.Errorf("report %q, want hostkey-changed for %s", out, bad.name)
	}
	if c.peers[0].logged(t)["203.0.113.9"] != 1 {
		t.Errorf("%s did not get the ban", c.peers[0].name)
	}
	if n := len(bad.logged(t)); n != 0 {
		t.Errorf("%s received %d bans through a wrong host key", bad.name, n)
	}
	var st status.Report
	if err := json.Unmarshal([]byte(c.run(nil, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Peer == bad.name && (p.LastFailureClass != "hostkey-changed" || p.Queued != 1) {
			t.Errorf("status %+v, want hostkey-changed with 1 queued", p)
		}
	}
}

// TestPushPeerDown: a peer down during 50 bans gets all of them once it
// is back and flush runs; the others get them meanwhile.
func TestPushPeerDown(t *testing.T) {
	c := newCluster(t, 3)
	down := c.peers[2]
	down.sshd.Stop()
	bans := docAddrs(0x100, 50)
	for _, a := range bans {
		c.run(nil, "push", a)
	}
	c.waitLogged(c.peers[:2], bans, 60*time.Second)
	c.stopSender()
	down.sshd.Start()
	c.run(nil, "flush", "--timeout", "30s")
	c.waitLogged(c.peers, bans, time.Second)
}

// TestPushBurst: 1000 bans, one push each, reach 10 peers over a few
// connections per peer rather than one per ban.
func TestPushBurst(t *testing.T) {
	testenv.Slow(t)
	const peers, bans = 10, 1000
	c := newCluster(t, peers)
	addrs := docAddrs(0x1000, bans)
	start := time.Now()
	for _, a := range addrs {
		c.run(nil, "push", a)
	}
	pushed := time.Since(start)
	took := c.waitLogged(c.peers, addrs, 2*time.Minute)
	conns := 0
	for _, p := range c.peers {
		conns += p.sshd.Connections()
	}
	t.Logf("%d pushes took %s; all %d lines in the logs %s after the last push; %d SSH connections for %d peers",
		bans, pushed, bans*peers, took, conns, peers)
	if conns > peers*bans/20 {
		t.Errorf("%d connections for %d bans to %d peers: want a few per peer, not one per ban", conns, bans, peers)
	}
}

// TestPushBlackholePeer: with one peer that accepts TCP and never answers,
// the others still get every ban.
func TestPushBlackholePeer(t *testing.T) {
	c := newCluster(t, 9)
	inv, _ := os.ReadFile(c.inventory)
	writeFile(t, c.inventory, string(inv)+fmt.Sprintf("Host hole\n  HostName 127.0.0.1\n  Port %d\n", blackhole(t)))
	bans := docAddrs(0x2000, 20)
	for _, a := range bans {
		c.run(nil, "push", a)
	}
	c.waitLogged(c.peers, bans, time.Minute)
}

// TestSenderKilled: SIGKILL the sender at random moments during 300 bans,
// then flush: every ban at every peer; duplicates are allowed, loss is not.
func TestSenderKilled(t *testing.T) {
	testenv.Slow(t)
	c := newCluster(t, 3)
	c.unlimited() // kills resend backlogs: the default bucket could run out
	bans := docAddrs(0x3000, 300)
	kills, tries := 0, 0
	for i, a := range bans {
		c.run(nil, "push", a)
		// Right after a push a sender runs, lingering: most tries find
		// one. At random moments, with one try at least every 30 pushes.
		if rand.IntN(10) == 0 || i%30 == 29 {
			tries++
			if killSender(c) {
				kills++
			}
		}
	}
	// A test that killed nothing would prove nothing.
	if kills < tries/2 || kills < 10 {
		t.Fatalf("killed the sender %d times in %d tries, want at least 10 and half the tries", kills, tries)
	}
	c.stopSender()
	c.run(nil, "flush", "--timeout", "30s")
	c.waitLogged(c.peers, bans, time.Second)
	dups := 0
	for _, p := range c.peers {
		for _, n := range p.logged(t) {
			dups += n - 1
		}
	}
	t.Logf("killed the sender %d times; %d duplicate lines over %d peers, no ban lost", kills, dups, len(c.peers))
}

// killSender SIGKILLs the background sender of c's spool, if one runs.
func killSender(c *cluster) bool {
	return sshdtest.SignalProcs(procMatch(isSender(c.spool)), syscall.SIGKILL) > 0
}

// TestPushIdempotent: fail2ban runs a failed actionban a second time, so
// the same ban can be queued twice; a peer that has not received it yet
// gets it once.
func TestPushIdempotent(t *testing.T) {
	c := newCluster(t, 2)
	c.peers[1].sshd.Stop()
	for i := 0; i < 3; i++ {
		c.run(nil, "push", "--jail", "sshd", "203.0.113.44")
	}
	c.waitLogged(c.peers[:1], []string{"203.0.113.44"}, 30*time.Second)
	c.stopSender()
	c.peers[1].sshd.Start()
	c.run(nil, "flush", "--timeout", "20s")
	if n := c.peers[1].logged(t)["203.0.113.44"]; n != 1 {
		t.Errorf("peer2 logged the ban %d times, want 1", n)
	}
}

// TestPushMaxAge: a ban queued longer ago than --max-age is dropped, not
// delivered, and counted.
func TestPushMaxAge(t *testing.T) {
	c := newCluster(t, 1)
	c.peers[0].sshd.Stop()
	c.run(nil, "push", "203.0.113.45")
	c.stopSender()
	c.peers[0].sshd.Start()
	time.Sleep(1100 * time.Millisecond) // let the ban age past --max-age 1s
	out := c.run(nil, "flush", "--max-age", "1s", "--json")
	var rep []peerReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].Dropped != 1 || rep[0].Delivered != 0 {
		t.Errorf("report %+v, want 1 dropped, 0 delivered", rep)
	}
	if n := len(c.peers[0].logged(t)); n != 0 {
		t.Errorf("peer logged %d bans, want none", n)
	}
}

// TestPushWaitRefusedByPeer: a ban the peer's policy refuses is not "ok,
// exit 0": the report says per peer how many were refused and why, and
// push --wait exits 65 with a hint.
func TestPushWaitRefusedByPeer(t *testing.T) {
	c := newCluster(t, 2)
	out, code, stderr := c.runCode("push", "--wait", "--allow-private", "10.1.2.3", "203.0.113.50")
	if code != exitData {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitData, out, stderr)
	}
	for _, p := range c.peers {
		if !regexp.MustCompile(`(?m)^` + p.name + ` +ok +1 +1 +0 +0 +1 ban refused by the peer \(line \d: refused: private address\)$`).MatchString(out) {
			t.Errorf("no refusal for %s in the report:\n%s", p.name, out)
		}
	}
	if !strings.Contains(stderr, "banpush: hint: a peer refuses what its policy refuses") {
		t.Errorf("no hint:\n%s", stderr)
	}
	out = c.run(nil, "flush", "--json")
	if strings.Contains(out, "refusal") {
		t.Errorf("the refusal is reported again by the next flush:\n%s", out)
	}
}

// TestPushWaitShowsRetries: on a terminal, push --wait says each retry of
// a peer that is down as it happens, instead of staying silent until its
// timeout; elsewhere (fail2ban, a timer) it does not.
func TestPushWaitShowsRetries(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "peers")
	writeFile(t, inv, "Host web1\n    HostName 127.0.0.1\n    Port 1\n    ConnectTimeout 1\n")
	for _, terminal := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		code := Main([]string{"--inventory", inv, "--spool", filepath.Join(dir, "spool"), "--self", "none", "push", "--wait", "--timeout", "3s", "203.0.113.51"},
			&Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Now: time.Now, StderrTerminal: terminal})
		if code != exitPeers {
			t.Fatalf("terminal %v: exit %d, want %d\n%s", terminal, code, exitPeers, stderr.String())
		}
		retries := regexp.MustCompile(`(?m)^banpush: note: peer web1: (unreachable|timeout)?.*; trying again in [0-9.]+m?s$`)
		if got := retries.MatchString(stderr.String()); got != terminal {
			t.Errorf("terminal %v: retries shown %v, want %v; stderr:\n%s", terminal, got, terminal, stderr.String())
		}
		if strings.Contains(stderr.String()+stdout.String(), "peer web1: sshpush: peer web1") {
			t.Errorf("the peer is named twice:\n%s%s", stdout.String(), stderr.String())
		}
	}
}

// TestUnbanWaitNotAllowed: a peer whose line lacks --allow-unban refuses
// the unban; unban --wait exits 65 and its hint says how to allow it, not
// the policy hint of a refused ban.
func TestUnbanWaitNotAllowed(t *testing.T) {
	c := newCluster(t, 1)
	out, code, stderr := c.runCode("unban", "--wait", "--fail2ban-socket", filepath.Join(c.dir, "none.sock"), "203.0.113.51")
	if code != exitData {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitData, out, stderr)
	}
	if !strings.Contains(out, "refused: "+string(record.ErrUnbanDenied)) {
		t.Errorf("no refusal in the report:\n%s", out)
	}
	if !strings.Contains(stderr, "banpush: hint: ") || !strings.Contains(stderr, "--allow-unban") || strings.Contains(stderr, "--allow-private") {
		t.Errorf("want a hint naming --allow-unban only:\n%s", stderr)
	}
}
