//go:build linux

package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// Fleet failure detection end to end: 'demo.sh up --detect', hosts whose
// sshd jails ban at 5 failures, every host reporting each failure its
// sshd jail finds ('banpush report-failures') to every other and to its
// own receiver, every receiver counting them under the fleet policy of its
// authorized_keys lines, and the banpush-fleet jail banning on the fleet
// line. 'demo.sh spread' makes the failures: real failed SSH logins from
// the attacker's namespace.

// Addresses of the detection tests, besides the attacker's, inside the
// demo's namespaces (spread --from adds them to the attacker's).
const (
	e2eMistyped = "10.77.0.80" // a user who mistypes twice on two hosts
	e2eTwoHosts = "10.77.0.81" // an attacker that tries two hosts only
	e2eOneHost  = "10.77.0.82" // 1,000 failures that one host reports
)

// e2eFleetMemory is where a receiver keeps the failures it counts: the
// received log's name with .fleet ("HOST ADDRESS T1,T2,..." a line).
const e2eFleetMemory = e2eReceived + ".fleet"

// e2eFleetJail is the jail that bans on fleet lines
// (contrib/fail2ban/jail.d/banpush-fleet.conf).
const e2eFleetJail = "banpush-fleet"

// e2eDetect is the size of a detection test.
type e2eDetect struct {
	hosts     int           // the demo's hosts
	tries     int           // failed logins on each host in turn, fewer than maxretry (5)
	threshold int           // the fleet policy's T: the failure that crosses it is the last
	gap       time.Duration // between two failures
}

// failures is the fleet policy's threshold.
func (d e2eDetect) failures() int { return d.threshold }

// e2eFleetHosts is the policy's K.
const e2eFleetHosts = 3

func (d e2eDetect) upArgs() []string {
	return []string{"--detect", "--hosts", strconv.Itoa(d.hosts),
		"--fleet-failures", strconv.Itoa(d.failures()), "--fleet-hosts", strconv.Itoa(e2eFleetHosts), "--fleet-window", "1h"}
}

// TestEndToEndFleetDetect: an attacker fails 3 times on each of 4 hosts
// in turn, 12 failures (the threshold, T=12, K=3), never 5 on one host.
// No host's sshd jail bans it; every host's firewall has it within 5 s of
// the 12th failure, by its banpush-fleet jail. A user who mistyped twice on two hosts, an
// attacker that tried two hosts only (4 times each), and a host that
// reports 1,000 failures of one address alone are banned nowhere.
func TestEndToEndFleetDetect(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	e2eFleetDetect(t, e2eDetect{hosts: 4, tries: 3, threshold: 12})
}

// TestEndToEndFleetDetect10 (long tier only: -banpush.long): the same
// policy (T=12, K=3) on 10 hosts, the attacker's failures 25 s apart, 3 on
// each host in turn, the 12th (on h4) after about 5 minutes: all 10 hosts
// ban it within 5 s, the six it never tried included.
func TestEndToEndFleetDetect10(t *testing.T) {
	testenv.Slow(t)
	if !*longFaults {
		t.Skip("runs with -banpush.long (about 7 minutes): go test ./cmd/banpush -run FleetDetect10 -banpush.long -v")
	}
	e2eRequire(t)
	e2eFleetDetect(t, e2eDetect{hosts: 10, tries: 3, threshold: 12, gap: 25 * time.Second})
}

func e2eFleetDetect(t *testing.T, d e2eDetect) {
	h := e2eUp(t, d.upArgs()...)
	threshold := d.failures()
	perHost := (threshold + e2eFleetHosts - 1) / e2eFleetHosts

	// Every failure but the last, d.tries on each host in turn: each host
	// has counted them all, and none has banned.
	full, rest := (threshold-1)/d.tries, (threshold-1)%d.tries
	if full+1 > len(h.hosts) {
		t.Fatalf("%d hosts cannot take %d failures, %d each", len(h.hosts), threshold, d.tries)
	}
	last := h.hosts[full] // where the threshold is crossed
	var fails []e2eFailure
	if full > 0 {
		fails = h.spread(d.gap, "--tries", strconv.Itoa(d.tries), "--hosts", strings.Join(h.hosts[:full], ","))
	}
	if rest > 0 {
		if len(fails) > 0 {
			time.Sleep(d.gap)
		}
		fails = append(fails, h.spread(d.gap, "--tries", strconv.Itoa(rest), "--hosts", last)...)
	}
	tried := full
	if rest > 0 {
		tried++
	}
	for _, host := range h.hosts {
		h.waitFor(host+": counts "+strconv.Itoa(threshold-1)+" failures of "+e2eAttacker, 30*time.Second, func() (bool, error) {
			n, hosts, err := h.fleetCount(host, e2eAttacker)
			return n == threshold-1 && hosts == tried, err
		})
	}
	for _, host := range h.hosts {
		if ok, err := h.firewalled(host, e2eAttacker); ok || err != nil {
			t.Fatalf("%s: %s in the firewall (or an error: %v) after %d failures, want no rule before %d", host, e2eAttacker, err, threshold-1, threshold)
		}
	}

	// The last failure crosses the threshold: every host bans within 5 s.
	time.Sleep(d.gap)
	fails = append(fails, h.spread(0, "--tries", "1", "--hosts", last)...)
	cross := fails[len(fails)-1].at
	seen := h.firewalledAt(h.hosts, e2eAttacker, cross.Add(5*time.Second))
	e2eLogFailures(t, h.hosts, fails)
	for _, host := range h.hosts {
		at, ok := seen[host]
		if !ok {
			t.Errorf("%s: no iptables rule for %s 5 s after failure %d", host, e2eAttacker, threshold)
			continue
		}
		t.Logf("%s: iptables rule %v after failure %d", host, at.Sub(cross).Round(time.Millisecond), threshold)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, host := range h.hosts {
		if ok, err := h.banned(host, e2eFleetJail, e2eAttacker); !ok {
			t.Errorf("%s: %s jail: got no ban of %s, want one (%v)", host, e2eFleetJail, e2eAttacker, err)
		}
		if ok, err := h.banned(host, "sshd", e2eAttacker); ok || err != nil {
			t.Errorf("%s: sshd jail: got a ban of %s (or an error: %v), want none: no host saw 5 failures", host, e2eAttacker, err)
		}
		lines := h.logLines(host, logline.Fleet.Tag(), e2eAttacker)
		if len(lines) != 1 {
			t.Errorf("%s: got %d fleet lines for %s, want 1: %q", host, len(lines), e2eAttacker, lines)
			continue
		}
		if f, k := e2eField(lines[0], "failures"), e2eField(lines[0], "hosts"); f < threshold || k < e2eFleetHosts {
			t.Errorf("%s: fleet line %q: got failures=%d hosts=%d, want at least %d and %d", host, lines[0], f, k, threshold, e2eFleetHosts)
		}
	}

	// Below the policy: a user who mistyped twice on two hosts, and an
	// attacker that tried two hosts only, 4 times each (under maxretry).
	h.spread(0, "--tries", "2", "--hosts", "h1,h2", "--from", e2eMistyped)
	h.spread(0, "--tries", "4", "--hosts", "h1,h2", "--from", e2eTwoHosts)
	// One host that reports 1,000 failures of an address: its fail2ban
	// finds them (a broken filter, a host that lies), report-failures
	// sends them to every peer and its own receiver.
	h.foundLines("h2", e2eOneHost, 1000)
	for _, host := range h.hosts {
		h.waitFor(host+": counts the failures below the policy", 30*time.Second, func() (bool, error) {
			if n, hosts, err := h.fleetCount(host, e2eMistyped); n != 4 || hosts != 2 || err != nil {
				return false, err
			}
			if n, hosts, err := h.fleetCount(host, e2eTwoHosts); n != 8 || hosts != 2 || err != nil {
				return false, err
			}
			n, hosts, err := h.fleetCount(host, e2eOneHost)
			return n >= perHost && hosts == 1, err
		})
	}
	for _, addr := range []string{e2eMistyped, e2eTwoHosts, e2eOneHost} {
		for _, host := range h.hosts {
			if ok, err := h.firewalled(host, addr); ok || err != nil {
				t.Errorf("%s: %s in the firewall (or an error: %v), want it banned nowhere", host, addr, err)
			}
			if lines := h.logLines(host, logline.Fleet.Tag(), addr); len(lines) != 0 {
				t.Errorf("%s: got fleet lines for %s, want none: %q", host, addr, lines)
			}
		}
	}
}

// e2eFailure is one failed login that 'demo.sh spread' made.
type e2eFailure struct {
	host string
	at   time.Time
}

// e2eSpreadLine is how spread tells a failure: "failure N: HOST, try I of
// J: ssh USER@ADDR from FROM, at SECONDS.MILLIS".
var e2eSpreadLine = regexp.MustCompile(`^\s*failure \d+: (h\d+), try \d+ of \d+: .* at (\d+)\.(\d{3})$`)

// spread runs 'demo.sh spread' with args and gap, and returns the
// failures it made.
func (h *e2eHosts) spread(gap time.Duration, args ...string) []e2eFailure {
	h.t.Helper()
	args = append([]string{"spread", h.dir, "--gap", strconv.FormatFloat(gap.Seconds(), 'f', 3, 64)}, args...)
	out, err := h.script(10*time.Minute, args...)
	if err != nil {
		h.t.Fatalf("demo.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var fails []e2eFailure
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := e2eSpreadLine.FindStringSubmatch(line)
		if m == nil {
			h.t.Fatalf("demo.sh spread: unexpected line %q", line)
		}
		sec, _ := strconv.ParseInt(m[2], 10, 64)
		ms, _ := strconv.ParseInt(m[3], 10, 64)
		fails = append(fails, e2eFailure{host: m[1], at: time.Unix(sec, ms*int64(time.Millisecond))})
	}
	return fails
}

// fleetCount is what a host's receiver counts of addr: the failures it
// remembers and the hosts they come from (the reporting hosts' names are
// the receiver's business).
func (h *e2eHosts) fleetCount(host, addr string) (failures, hosts int, err error) {
	out, err := h.on(host, "sh", "-c", "cat "+e2eFleetMemory+" 2>/dev/null || true")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == addr {
			failures += len(strings.Split(f[2], ","))
			hosts++
		}
	}
	return failures, hosts, err
}

// firewalledAt watches the hosts' iptables, each on its own, until each
// has a rule for addr or the deadline passes (a second's grace, to tell
// late from never): it returns when each host's rule was seen.
func (h *e2eHosts) firewalledAt(hosts []string, addr string, deadline time.Time) map[string]time.Time {
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]time.Time{}
	for _, host := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline.Add(time.Second)) {
				if ok, _ := h.firewalled(host, addr); ok {
					mu.Lock()
					seen[host] = time.Now()
					mu.Unlock()
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for host, at := range seen {
		if at.After(deadline) {
			h.t.Logf("%s: rule for %s seen %v after the deadline", host, addr, at.Sub(deadline).Round(time.Millisecond))
			delete(seen, host)
		}
	}
	return seen
}

// foundLines appends n "Found" lines for addr to a host's fail2ban log,
// in the shape of the last one its sshd jail wrote for the attacker, as
// if its fail2ban had found n failures of addr now.
func (h *e2eHosts) foundLines(host, addr string, n int) {
	h.t.Helper()
	script := `set -e
line=$(grep -F "[sshd] Found $1 - " /var/log/fail2ban.log | tail -n 1)
[ -n "$line" ]
mid=${line#* * }
mid=${mid%% Found *}
now=$(date '+%Y-%m-%d %H:%M:%S')
i=0
while [ "$i" -lt "$3" ]; do
	printf '%s,%03d %s Found %s - %s\n' "$now" $((i % 1000)) "$mid" "$2" "$now"
	i=$((i + 1))
done >>/var/log/fail2ban.log`
	h.mustOn(host, "bash", "-c", script, "found", e2eAttacker, addr, strconv.Itoa(n))
}

// e2eLogFailures logs each host's failures, in seconds since the first.
func e2eLogFailures(t *testing.T, hosts []string, fails []e2eFailure) {
	t.Helper()
	by := map[string][]string{}
	for i, f := range fails {
		by[f.host] = append(by[f.host], fmt.Sprintf("#%d +%.1fs", i+1, f.at.Sub(fails[0].at).Seconds()))
	}
	for _, host := range hosts {
		if len(by[host]) == 0 {
			t.Logf("%s: no failure (never tried)", host)
			continue
		}
		t.Logf("%s: failures %s", host, strings.Join(by[host], ", "))
	}
}

// e2eField is the number of a line's KEY=N field, or -1.
func e2eField(line, key string) int {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return -1
}
