//go:build linux

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestEndToEndSync: 'banpush sync' on the demo's hosts (real sshd,
// fail2ban and iptables in network namespaces). h1's fail2ban holds 50
// active bans, 10 of them permanent and 40 with an hour to run, and has
// held 5 more that have ended, all while h3 was not in h1's inventory. h3
// is added back with 'peers add', whose hint says to sync it, and 'sync
// h3' sends it exactly the 50, each with fail2ban's start time and
// bantime, none of the 5; h3's firewall then rejects them. h2 gets
// nothing from it.
func TestEndToEndSync(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	h := e2eUp(t)
	addr := func(i int) string { return fmt.Sprintf("10.77.1.%d", i) }
	h.mustOn("h1", "banpush", "peers", "remove", "h3")

	// 5 bans that end at once and 40 of an hour, banned by fail2ban itself
	// in the sshd jail (which pushes them to h2), and 10 permanent ones in
	// h1's banpush jail (a ban without a bantime of its own lasts the
	// jail's bantime of the moment, so each kind has its jail).
	ban := func(jail, bantime string, from, to int) {
		h.mustOn("h1", "fail2ban-client", "set", jail, "bantime", bantime)
		args := []string{"fail2ban-client", "set", jail, "banip"}
		for i := from; i <= to; i++ {
			args = append(args, addr(i))
		}
		h.mustOn("h1", args...)
	}
	ban("sshd", "1", 1, 5)
	h.waitFor("h1: the 5 short bans ended", 30*time.Second, func() (bool, error) {
		for i := 1; i <= 5; i++ {
			if ok, err := h.banned("h1", "sshd", addr(i)); ok || err != nil {
				return false, err
			}
		}
		return true, nil
	})
	ban("banpush", "-1", 6, 15)
	ban("sshd", "3600", 16, 55)
	h.waitFor("h2: received the 45 bans h1's sshd jail pushed", 20*time.Second, func() (bool, error) {
		return h.received("h2", addr(55)) == 1, nil
	})
	h.mustOn("h1", "banpush", "flush")
	h2Before := strings.Count(h.mustOn("h2", "cat", e2eReceived), "\n")

	// peers add says, on stderr, to sync the new peer.
	if out := h.mustOn("h1", "sh", "-c", "banpush peers add h3 --host 10.77.0.13 2>&1"); !strings.Contains(out, "banpush sync h3") {
		t.Errorf("peers add: no hint to sync the new peer:\n%s", out)
	}
	start := time.Now()
	h.mustOn("h1", "banpush", "sync", "--allow-private", "--jail", "sshd", "--jail", "banpush", "h3")
	h.mustOn("h1", "banpush", "flush")
	t.Logf("sync h3 and flush: %v", time.Since(start).Round(time.Millisecond))

	// Exactly the 50, once each, with fail2ban's times.
	lines := map[string]string{}
	for _, line := range strings.Split(h.mustOn("h3", "cat", e2eReceived), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1]+" "+f[2] != "banpush: ban" || f[4] != "peer=h1" {
			continue
		}
		if _, dup := lines[f[3]]; dup {
			t.Errorf("h3 received %s twice", f[3])
		}
		lines[f[3]] = line
	}
	if len(lines) != 50 {
		t.Errorf("h3 received %d bans from h1, want 50", len(lines))
	}
	now := time.Now().Unix()
	for i := 1; i <= 55; i++ {
		line, ok := lines[addr(i)]
		switch {
		case i <= 5 && ok:
			t.Errorf("h3 received %s, whose ban had ended: %s", addr(i), line)
		case i > 5 && !ok:
			t.Errorf("h3 did not receive %s", addr(i))
		case i > 5:
			// STAMP banpush: ban ADDR peer=h1 RECORD-FIELDS...
			f := strings.Fields(line)
			r, err := record.Parse([]byte(strings.Join(append([]string{f[3]}, f[5:]...), " ")))
			jail, bantime := "sshd", int64(3600)
			if i <= 15 {
				jail, bantime = "banpush", record.Permanent
			}
			if err != nil || r.Jail != jail || r.BanTime != bantime || r.Time < now-120 || r.Time > now {
				t.Errorf("h3's line for %s: %q (%v): want jail %s, bantime %d, time within the last 2 minutes", addr(i), line, err, jail, bantime)
			}
		}
	}
	for _, i := range []int{6, 15, 16, 55} {
		h.waitFor("h3: iptables rule for "+addr(i), 15*time.Second, func() (bool, error) {
			return h.firewalled("h3", addr(i))
		})
	}
	if after := strings.Count(h.mustOn("h2", "cat", e2eReceived), "\n"); after != h2Before {
		t.Errorf("h2's log grew from %d to %d lines: sync h3 sent to h2 too", h2Before, after)
	}
	if st := h.status("h1")["h3"]; st.Delivered != 50 || st.Queued != 0 {
		t.Errorf("h1 status for h3: %d delivered, %d queued; want 50 and 0", st.Delivered, st.Queued)
	}
}
