//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/status"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The end-to-end test drives contrib/demo/demo.sh, the demo the README
// starts with: three hosts (h1, h2, h3; more with --hosts N) and an
// attacker, each in its own network namespace on a private bridge, each
// host with its own real sshd, fail2ban, iptables and banpush set up from
// contrib/. The script sets the hosts up and tears them down; the test
// attacks, waits and asserts.

// Addresses inside the demo's namespaces (contrib/demo/demo.sh).
const (
	e2eAttacker = "10.77.0.66"
	e2eLater    = "10.77.0.99" // banned by hand on h1 after its restart
	e2eFromH2   = "10.77.0.98" // pushed by hand from h2
	e2eFromH3   = "10.77.0.97" // pushed by hand from h3
)

// e2eReceived is the receiving log, as contrib/sshd/setup-receiver.sh
// creates it on every host.
const e2eReceived = "/var/log/banpush/received.log"

// e2eHosts is a running demo: its directory, as 'demo.sh up' made it.
type e2eHosts struct {
	t     *testing.T
	demo  string
	dir   string
	hosts []string // h1, h2, ...: three unless 'up' was given --hosts N
}

// e2eRequire skips (fails, in CI) unless this is root with what the demo
// runs.
func e2eRequire(t *testing.T) {
	t.Helper()
	testenv.Need(t,
		testenv.Root("it creates network namespaces and iptables rules"),
		testenv.Command(testenv.SSHD, "openssh-server"),
		testenv.Command("ssh-keyscan", "openssh-client"),
		testenv.Command("ssh-keygen", "openssh-client"),
		testenv.Command("fail2ban-server", "fail2ban"),
		testenv.Command("fail2ban-client", "fail2ban"),
		testenv.Command("iptables", "iptables"),
		testenv.Command("ip", "iproute2"),
		testenv.Command("nsenter", "util-linux"),
		testenv.Command("unshare", "util-linux"),
		testenv.Command("bash", "bash"),
	)
}

// e2eUp sets up the demo's hosts under fresh namespace names, with the
// extra arguments of 'demo.sh up' (--fleet, or --installed for the
// installed package instead of a banpush built here, --hosts N), and tears
// them down when the test ends.
func e2eUp(t *testing.T, args ...string) *e2eHosts {
	t.Helper()
	n := 3
	if i := slices.Index(args, "--hosts"); i >= 0 && i+1 < len(args) {
		var err error
		if n, err = strconv.Atoi(args[i+1]); err != nil {
			t.Fatalf("e2eUp: --hosts %q: %v", args[i+1], err)
		}
	}
	demo, err := filepath.Abs(filepath.Join("..", "..", "contrib", "demo", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(args, "--installed") {
		args = append([]string{"--bin", buildBanpush(t)}, args...)
	}
	var id [3]byte
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	h := &e2eHosts{t: t, demo: demo, dir: filepath.Join(t.TempDir(), "demo")}
	for i := 1; i <= n; i++ {
		h.hosts = append(h.hosts, "h"+strconv.Itoa(i))
	}
	t.Cleanup(func() {
		if out, err := h.script(time.Minute, "down", h.dir); err != nil {
			t.Errorf("demo.sh down: %v\n%s", err, out)
		}
	})
	t.Cleanup(h.dumpIfFailed)
	start := time.Now()
	up := append([]string{"up", h.dir, "--prefix", "bpt" + hex.EncodeToString(id[:])}, args...)
	// Three hosts are up in seconds; each more adds its sshd, fail2ban
	// and a key exchange with every other host.
	if out, err := h.script(max(2*time.Minute, time.Duration(n)*30*time.Second), up...); err != nil {
		t.Fatalf("demo.sh up: %v\n%s", err, out)
	}
	t.Logf("hosts up in %v", time.Since(start).Round(time.Millisecond))
	return h
}

// script runs demo.sh with args and returns its output.
func (h *e2eHosts) script(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{h.demo}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// on runs a command on a host and returns its standard output.
func (h *e2eHosts) on(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{h.demo, "on", h.dir, host}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), &e2eError{host: host, args: args, err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type e2eError struct {
	host   string
	args   []string
	err    error
	stderr string
}

func (e *e2eError) Unwrap() error { return e.err }

func (e *e2eError) Error() string {
	return e.host + ": " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

func (h *e2eHosts) mustOn(host string, args ...string) string {
	h.t.Helper()
	out, err := h.on(host, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or timeout passes; it returns how long
// that took.
func (h *e2eHosts) waitFor(what string, timeout time.Duration, cond func() (bool, error)) time.Duration {
	h.t.Helper()
	start := time.Now()
	var last error
	for {
		ok, err := cond()
		if ok {
			return time.Since(start)
		}
		if err != nil {
			last = err
		}
		if time.Since(start) > timeout {
			h.t.Fatalf("%s: not after %v (last error: %v)", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// banned says whether a fail2ban jail of a host lists addr.
func (h *e2eHosts) banned(host, jail, addr string) (bool, error) {
	out, err := h.on(host, "fail2ban-client", "status", jail)
	return e2eHasWord(out, addr), err
}

// firewalled says whether a host's iptables has a rule for addr.
func (h *e2eHosts) firewalled(host, addr string) (bool, error) {
	out, err := h.on(host, "iptables", "-w", "-S")
	return strings.Contains(out, " -s "+addr+"/32 "), err
}

// received counts the lines of a host's receiving log that ban addr.
func (h *e2eHosts) received(host, addr string) int {
	h.t.Helper()
	return len(h.receivedLines(host, addr))
}

// receivedLines returns the lines of a host's receiving log that ban addr.
func (h *e2eHosts) receivedLines(host, addr string) []string {
	h.t.Helper()
	return h.logLines(host, logline.Ban.Tag(), addr)
}

// logLines returns the lines of a host's receiving log with tag for addr.
func (h *e2eHosts) logLines(host, tag, addr string) []string {
	h.t.Helper()
	var lines []string
	for _, line := range strings.Split(h.mustOn(host, "cat", e2eReceived), "\n") {
		if strings.Contains(line, " "+tag+" "+addr+" ") {
			lines = append(lines, line)
		}
	}
	return lines
}

// status is 'banpush status --json' on a host, by peer.
func (h *e2eHosts) status(host string) map[string]status.Peer {
	h.t.Helper()
	var rep status.Report
	out := h.mustOn(host, "banpush", "status", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		h.t.Fatalf("%s: banpush status --json: %v\n%s", host, err, out)
	}
	peers := map[string]status.Peer{}
	for _, p := range rep.Peers {
		peers[p.Peer] = p
	}
	return peers
}

// dumpIfFailed logs what each host's fail2ban and sender said.
func (h *e2eHosts) dumpIfFailed() {
	if !h.t.Failed() {
		return
	}
	for _, host := range h.hosts {
		out, _ := h.on(host, "sh", "-c",
			"tail -n 30 /var/log/fail2ban.log; tail -n 20 /var/log/auth.log; cat "+e2eReceived+
				"; cat /var/spool/banpush/sender.log; iptables -S; tail -n 20 "+
				filepath.Join(h.dir, host, "report-failures.log")+" "+e2eReceived+".fleet 2>/dev/null")
		h.t.Logf("--- %s\n%s", host, out)
	}
}

func e2eHasWord(text, word string) bool {
	for _, f := range strings.Fields(strings.ReplaceAll(text, ",", " ")) {
		if f == word {
			return true
		}
	}
	return false
}

// TestEndToEnd: a brute force on h1 becomes a ban in h1's fail2ban, then
// an iptables rule on h2 and h3; nothing comes back to h1, and restarting
// h1's fail2ban does not push its restored ban again.
func TestEndToEnd(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	e2eBruteForce(t, e2eUp(t))
}

// e2eBruteForce is TestEndToEnd on hosts that are up; TestPackages runs it
// on hosts set up from the installed package.
func e2eBruteForce(t *testing.T, h *e2eHosts) {
	// h1's sshd jail bans the attacker: 'attack' returns once it does.
	start := time.Now()
	if out, err := h.script(2*time.Minute, "attack", h.dir); err != nil {
		t.Fatalf("demo.sh attack: %v\n%s", err, out)
	}
	banned := time.Now() // when the attack saw the ban: a little after it
	t.Logf("h1 banned %s; the attack took %v", e2eAttacker, banned.Sub(start).Round(time.Millisecond))
	if ok, err := h.banned("h1", "sshd", e2eAttacker); !ok {
		t.Fatalf("h1 sshd jail: got no ban of %s, want one (%v)", e2eAttacker, err)
	}

	// h2 and h3 reject it in their firewalls within 10 s of h1's ban.
	for _, host := range []string{"h2", "h3"} {
		h.waitFor(host+": iptables rule for "+e2eAttacker, 10*time.Second-time.Since(banned), func() (bool, error) {
			return h.firewalled(host, e2eAttacker)
		})
		t.Logf("%s: iptables rule %v after the attack saw h1's ban", host, time.Since(banned).Round(time.Millisecond))
	}

	// Restarting h1's fail2ban restores the sshd ban from its database
	// but does not push it again. flush ends the lingering sender, so
	// that status shows its final counts.
	h.mustOn("h1", "banpush", "flush")
	before := h.status("h1")
	h.mustOn("h1", "fail2ban-client", "restart")
	h.waitFor("h1: sshd ban restored after restart", 30*time.Second, func() (bool, error) {
		if ok, err := h.banned("h1", "sshd", e2eAttacker); !ok {
			return false, err
		}
		return h.firewalled("h1", e2eAttacker)
	})
	// A new ban on the same jail goes through the same actions after the
	// restored one: once it has arrived, a push of the restored ban would
	// have too.
	h.mustOn("h1", "fail2ban-client", "set", "sshd", "banip", e2eLater)
	for _, host := range []string{"h2", "h3"} {
		h.waitFor(host+": receives "+e2eLater, 10*time.Second, func() (bool, error) {
			return h.received(host, e2eLater) == 1, nil
		})
	}
	h.mustOn("h1", "banpush", "flush")
	after := h.status("h1")
	for _, host := range []string{"h2", "h3"} {
		if got := h.received(host, e2eAttacker); got != 1 {
			t.Errorf("%s: got %d lines banning %s after h1's restart, want 1", host, got, e2eAttacker)
		}
		if got, want := after[host].Delivered, before[host].Delivered+1; got != want {
			t.Errorf("h1 status for %s: got %d delivered, want %d (only %s since the restart)", host, got, want, e2eLater)
		}
		if got := after[host].Queued; got != 0 {
			t.Errorf("h1 status for %s: got %d queued, want 0", host, got)
		}
	}

	// Nothing comes back to h1: h2 and h3 received the ban in their
	// banpush jail, which has no push action. Their own pushes do reach
	// h1 (so the absence means something), and h1's banpush jail bans
	// those.
	h.mustOn("h2", "banpush", "push", "--wait", "--allow-private", "--jail", "e2e", "--", e2eFromH2)
	h.mustOn("h3", "banpush", "push", "--wait", "--allow-private", "--jail", "e2e", "--", e2eFromH3)
	for _, addr := range []string{e2eFromH2, e2eFromH3} {
		if got := h.received("h1", addr); got != 1 {
			t.Errorf("h1: got %d lines banning %s, want 1", got, addr)
		}
		h.waitFor("h1 banpush jail bans "+addr, 10*time.Second, func() (bool, error) {
			return h.banned("h1", "banpush", addr)
		})
	}
	if got := h.received("h1", e2eAttacker); got != 0 {
		t.Errorf("h1: got %d lines banning %s in %s, want 0: its own ban came back", got, e2eAttacker, e2eReceived)
	}
	if ok, err := h.banned("h1", "banpush", e2eAttacker); ok || err != nil {
		t.Errorf("h1 banpush jail: got a ban of %s (or an error: %v), want none", e2eAttacker, err)
	}
}

// Files of the fleet setup, as contrib/fleet/setup-host.sh installs them.
const (
	e2eAuthorizedKeys = "/var/lib/banpush/.ssh/authorized_keys"
	e2eInventory      = "/etc/banpush/peers"
	e2eKnownHosts     = "/etc/banpush/known_hosts"
	e2eKRL            = "/etc/ssh/banpush_revoked.krl"
)

// TestEndToEndFleet: the demo's --fleet mode, the README's fleet setup
// with certificates. Every host holds the same authorized_keys (one
// cert-authority line), the same inventory (which names the host itself)
// and the same known_hosts (one @cert-authority line). A ban on h1 reaches
// h2 and h3, whose logs name h1 after its certificate's key ID, and h1
// sends nothing to itself. A key ID a receiver's KRL revokes is refused
// there, and only there. The brute force itself is TestEndToEnd's: here
// h1's sshd jail bans by hand, through the same action.
func TestEndToEndFleet(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	h := e2eUp(t, "--fleet")
	hosts := []string{"h1", "h2", "h3"}

	for _, f := range []string{e2eAuthorizedKeys, e2eInventory, e2eKnownHosts} {
		want := h.mustOn("h1", "cat", f)
		for _, host := range hosts[1:] {
			if got := h.mustOn(host, "cat", f); got != want {
				t.Errorf("%s: %s differs from h1's:\n%s\nh1's:\n%s", host, f, got, want)
			}
		}
	}
	if keys := e2eLines(h.mustOn("h1", "cat", e2eAuthorizedKeys)); len(keys) != 1 || !strings.HasPrefix(keys[0], "cert-authority,principals=\"banpush\",") {
		t.Errorf("%s: got %q, want one cert-authority line", e2eAuthorizedKeys, keys)
	}
	if known := e2eLines(h.mustOn("h1", "cat", e2eKnownHosts)); len(known) != 1 || !strings.HasPrefix(known[0], "@cert-authority * ") {
		t.Errorf("%s: got %q, want one @cert-authority line", e2eKnownHosts, known)
	}
	// Each host finds itself in the inventory and sends nothing to it.
	for _, host := range hosts {
		out := h.mustOn(host, "banpush", "peers", "list", "--json")
		var peers []struct {
			Name       string `json:"name"`
			Self       bool   `json:"self"`
			SelfReason string `json:"self_reason"`
		}
		if err := json.Unmarshal([]byte(out), &peers); err != nil {
			t.Fatalf("%s: banpush peers list --json: %v\n%s", host, err, out)
		}
		var self []string
		for _, p := range peers {
			if p.Self {
				self = append(self, p.Name+": "+p.SelfReason)
			}
		}
		if len(peers) != 3 || len(self) != 1 || !strings.HasPrefix(self[0], host+": ") {
			t.Errorf("%s: peers list: got %d peers, self %q; want 3 peers, self %s", host, len(peers), self, host)
		}
	}

	h.mustOn("h1", "fail2ban-client", "set", "sshd", "banip", e2eAttacker)
	banned := time.Now()
	for _, host := range hosts[1:] {
		h.waitFor(host+": iptables rule for "+e2eAttacker, 10*time.Second, func() (bool, error) {
			return h.firewalled(host, e2eAttacker)
		})
		t.Logf("%s: iptables rule %v after h1's ban", host, time.Since(banned).Round(time.Millisecond))
		if lines := h.receivedLines(host, e2eAttacker); len(lines) != 1 || !strings.Contains(lines[0], " peer=h1 ") {
			t.Errorf("%s: got %q in %s, want one line with peer=h1 (the key ID of h1's certificate)", host, lines, e2eReceived)
		}
	}
	// flush ends the lingering sender: whatever h1 would send, it has sent.
	h.mustOn("h1", "banpush", "flush")
	if got := h.received("h1", e2eAttacker); got != 0 {
		t.Errorf("h1: got %d lines banning %s in %s, want 0: h1 sent to itself", got, e2eAttacker, e2eReceived)
	}

	// Revoke h3's certificate by key ID, as the README does, in h2's KRL.
	spec := filepath.Join(t.TempDir(), "revoke")
	writeTestFile(t, spec, "id: h3\n")
	krl := filepath.Join(h.dir, "ca", "fleet", "banpush_revoked.krl")
	if out, err := exec.Command("ssh-keygen", "-k", "-u", "-s", filepath.Join(h.dir, "ca", "user_ca.pub"), "-f", krl, spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, out)
	}
	h.mustOn("h2", "install", "-m", "0644", krl, e2eKRL)
	out, err := h.on("h3", "banpush", "push", "--wait", "--json", "--allow-private", "--jail", "e2e", "--", e2eFromH3)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitPeers {
		t.Fatalf("h3: push --wait with h3 revoked on h2: got %v, want exit %d\n%s", err, exitPeers, out)
	}
	var reports []peerReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("h3: push --wait --json: %v\n%s", err, out)
	}
	results := map[string]string{}
	for _, r := range reports {
		results[r.Peer] = r.Result
	}
	if want := map[string]string{"h1": "ok", "h2": "auth"}; !reflect.DeepEqual(results, want) {
		t.Errorf("h3: push --wait with h3 revoked on h2: got results %v, want %v", results, want)
	}
	if lines := h.receivedLines("h1", e2eFromH3); len(lines) != 1 || !strings.Contains(lines[0], " peer=h3 ") {
		t.Errorf("h1: got %q, want one line banning %s with peer=h3", lines, e2eFromH3)
	}
	for _, host := range []string{"h2", "h3"} {
		if got := h.received(host, e2eFromH3); got != 0 {
			t.Errorf("%s: got %d lines banning %s, want 0", host, got, e2eFromH3)
		}
	}
}

// e2eLines returns the lines of a file that are neither empty nor comments.
func e2eLines(text string) []string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines
}
