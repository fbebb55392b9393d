//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// Addresses of the unban test, inside the demo's namespaces.
const (
	e2eWhileDown = "10.77.0.71" // banned on h1 while h2 is down, unbanned before it returns
	e2eStale     = "10.77.0.72" // pushed by h2 inside h3's unban window
	e2eNotAllow  = "10.77.0.73" // unbanned by a key h3 does not let unban
)

// bannedAnywhere says whether the host's sshd or banpush jail lists addr
// (the demo's hosts run those two).
func (h *e2eHosts) bannedAnywhere(host, addr string) (bool, error) {
	for _, jail := range []string{"sshd", "banpush"} {
		if ok, err := h.banned(host, jail, addr); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// gone says whether addr is in no jail and no iptables chain of host.
func (h *e2eHosts) gone(host, addr string) (bool, error) {
	if fw, err := h.firewalled(host, addr); fw || err != nil {
		return false, err
	}
	b, err := h.bannedAnywhere(host, addr)
	return !b && err == nil, err
}

// unbanLines returns the unban lines for addr in a host's receiving log.
func (h *e2eHosts) unbanLines(host, addr string) []string {
	h.t.Helper()
	return h.logLines(host, logline.Unban.Tag(), addr)
}

// authorize rewrites the line of from's key in to's authorized_keys, as
// the demo wrote it, with extra arguments instead.
func (h *e2eHosts) authorize(from, to, fromAddr string, extra ...string) {
	h.t.Helper()
	args := append([]string{"banpush", "authorize", "--peer", from, "--log", e2eReceived,
		"--from", fromAddr, "--allow-private"}, extra...)
	args = append(args, "--install", "/var/lib/banpush/.ssh/authorized_keys", filepath.Join(h.dir, from+".pub"))
	h.mustOn(to, args...)
}

// pushReport runs 'banpush push --wait --json' on a host and returns its
// per-peer report (the exit status says whether a peer refused).
func (h *e2eHosts) pushReport(host string, args ...string) map[string]peerReport {
	h.t.Helper()
	out, err := h.on(host, append([]string{"banpush", "push", "--wait", "--json", "--allow-private"}, args...)...)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == exitData) {
		h.t.Fatal(err)
	}
	return parseReport(h.t, host, out)
}

func parseReport(t *testing.T, host, out string) map[string]peerReport {
	t.Helper()
	var reps []peerReport
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		t.Fatalf("%s: report: %v\n%s", host, err, out)
	}
	m := map[string]peerReport{}
	for _, r := range reps {
		m[r.Peer] = r
	}
	return m
}

// TestEndToEndUnban: the acceptance of 'banpush unban' and its receiver
// side, on the demo's hosts (real sshd, fail2ban and iptables in network
// namespaces, apply-unbans following each received log as its systemd
// units would).
func TestEndToEndUnban(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	h := e2eUp(t)
	all := []string{"h1", "h2", "h3"}

	// A brute force bans the attacker on h1; h2 and h3 follow. One
	// 'banpush unban' on h1 lifts it everywhere within 5 s: no iptables
	// rule and no jail lists it on any host.
	if out, err := h.script(2*time.Minute, "attack", h.dir); err != nil {
		t.Fatalf("demo.sh attack: %v\n%s", err, out)
	}
	for _, host := range []string{"h2", "h3"} {
		h.waitFor(host+": iptables rule for "+e2eAttacker, 15*time.Second, func() (bool, error) {
			return h.firewalled(host, e2eAttacker)
		})
	}
	start := time.Now()
	h.mustOn("h1", "banpush", "unban", "--allow-private", e2eAttacker)
	for _, host := range all {
		h.waitFor(host+": "+e2eAttacker+" lifted", 5*time.Second-time.Since(start), func() (bool, error) {
			return h.gone(host, e2eAttacker)
		})
		t.Logf("%s: %s in no chain and no jail %v after the unban", host, e2eAttacker, time.Since(start).Round(time.Millisecond))
	}

	// h1 bans an address while h2 is down (its sshd port resets every
	// connection), and unbans it before h2 returns: h3 had it and loses
	// it; h2 never bans it, and gets only the unban.
	reject := []string{"INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"}
	h.mustOn("h2", append([]string{"iptables", "-w", "-I"}, reject...)...)
	h.mustOn("h1", "fail2ban-client", "set", "sshd", "banip", e2eWhileDown)
	h.waitFor("h3: iptables rule for "+e2eWhileDown, 10*time.Second, func() (bool, error) {
		return h.firewalled("h3", e2eWhileDown)
	})
	h.mustOn("h1", "banpush", "unban", "--allow-private", e2eWhileDown)
	h.waitFor("h3: "+e2eWhileDown+" lifted", 10*time.Second, func() (bool, error) {
		return h.gone("h3", e2eWhileDown)
	})
	// Once h2 is back, the background sender (which retries it at most
	// 4 s apart) or the flush delivers: h1's counters for h2, not the
	// flush's own report, say what went to h2.
	before := h.status("h1")["h2"]
	h.mustOn("h2", append([]string{"iptables", "-w", "-D"}, reject...)...)
	out := h.mustOn("h1", "banpush", "flush", "--json")
	if rep := parseReport(t, "h1", out)["h2"]; rep.Result != "ok" {
		t.Errorf("h1's flush to h2 once back: %+v, want ok", rep)
	}
	after := h.status("h1")["h2"]
	if after.Cancelled-before.Cancelled != 1 || after.Unbanned-before.Unbanned != 1 || after.Delivered != before.Delivered || after.Queued != 0 {
		t.Errorf("h1's counters for h2 once back: before %+v, after %+v; want one ban cancelled, one unban delivered, no ban delivered, none queued", before, after)
	}
	if got := h.received("h2", e2eWhileDown); got != 0 {
		t.Errorf("h2 received %d bans of %s, want none", got, e2eWhileDown)
	}
	if got := len(h.unbanLines("h2", e2eWhileDown)); got != 1 {
		t.Errorf("h2 received %d unbans of %s, want 1", got, e2eWhileDown)
	}
	if f2b := h.mustOn("h2", "cat", "/var/log/fail2ban.log"); strings.Contains(f2b, "Ban "+e2eWhileDown) {
		t.Errorf("h2's fail2ban banned %s", e2eWhileDown)
	}
	if ok, err := h.gone("h2", e2eWhileDown); !ok {
		t.Errorf("h2: %s banned (%v)", e2eWhileDown, err)
	}

	// The unban window: h3 refuses h2's ban of an address it unbanned
	// moments ago as stale; once h2's key's window (4 s here) has passed,
	// the same ban bans.
	h.authorize("h2", "h3", "10.77.0.12", "--allow-unban", "--unban-window", "4s")
	h.mustOn("h1", "fail2ban-client", "set", "sshd", "banip", e2eStale)
	h.waitFor("h3: iptables rule for "+e2eStale, 10*time.Second, func() (bool, error) {
		return h.firewalled("h3", e2eStale)
	})
	h.mustOn("h1", "banpush", "unban", "--allow-private", e2eStale)
	h.waitFor("h3: "+e2eStale+" lifted", 10*time.Second, func() (bool, error) {
		return h.gone("h3", e2eStale)
	})
	unbanned := time.Now()
	rep := h.pushReport("h2", e2eStale)["h3"]
	if rep.Refused != 1 || !strings.Contains(rep.Refusal, "stale ban") {
		t.Errorf("h2's ban of %s inside h3's window: %+v, want it refused as stale", e2eStale, rep)
	}
	if since := time.Since(unbanned); since > 4*time.Second {
		t.Logf("the stale push took %v: past the window already", since)
	}
	time.Sleep(4*time.Second - time.Since(unbanned) + 500*time.Millisecond)
	if rep := h.pushReport("h2", e2eStale)["h3"]; rep.Delivered != 1 {
		t.Errorf("h2's ban of %s after h3's window: %+v, want it delivered", e2eStale, rep)
	}
	h.waitFor("h3 bans "+e2eStale+" again after the window", 10*time.Second, func() (bool, error) {
		return h.firewalled("h3", e2eStale)
	})

	// A key h3 does not let unban: its unban is refused there, nothing is
	// applied, and the address stays banned on h3 (h2, which allows it,
	// lifts it). sshd fixes a connection's forced command when it
	// authenticates, so h1's lingering sender is stopped first (flush)
	// and its next connection gets the new line; and again before the
	// unban, so that --wait delivers it and reports.
	h.authorize("h1", "h3", "10.77.0.11")
	h.mustOn("h1", "banpush", "flush")
	h.mustOn("h1", "fail2ban-client", "set", "sshd", "banip", e2eNotAllow)
	for _, host := range []string{"h2", "h3"} {
		h.waitFor(host+": iptables rule for "+e2eNotAllow, 10*time.Second, func() (bool, error) {
			return h.firewalled(host, e2eNotAllow)
		})
	}
	h.mustOn("h1", "banpush", "flush")
	out, err := h.on("h1", "banpush", "unban", "--wait", "--json", "--allow-private", e2eNotAllow)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitData {
		t.Errorf("unban --wait with a refusing peer: %v, want exit %d", err, exitData)
	}
	reps := parseReport(t, "h1", out)
	if r := reps["h3"]; r.Refused != 1 || !strings.Contains(r.Refusal, "unban not allowed for this key") {
		t.Errorf("h3's answer to h1's unban: %+v, want it refused as not allowed", r)
	}
	if r := reps["h2"]; r.Unbanned != 1 {
		t.Errorf("h2's answer to h1's unban: %+v, want it applied", r)
	}
	h.waitFor("h2: "+e2eNotAllow+" lifted", 5*time.Second, func() (bool, error) {
		return h.gone("h2", e2eNotAllow)
	})
	if got := len(h.unbanLines("h3", e2eNotAllow)); got != 0 {
		t.Errorf("h3 wrote %d unban lines for %s, want none", got, e2eNotAllow)
	}
	time.Sleep(time.Second) // apply-unbans reads every 200 ms
	if ok, err := h.banned("h3", "banpush", e2eNotAllow); !ok {
		t.Errorf("h3: %s no longer banned (%v)", e2eNotAllow, err)
	}
	if ok, err := h.firewalled("h3", e2eNotAllow); !ok {
		t.Errorf("h3: no iptables rule for %s any more (%v)", e2eNotAllow, err)
	}
}
