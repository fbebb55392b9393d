package receive

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

// fleetConfig is a receiver of host's reports with the fleet policy T, K,
// W = 12, 3, 1h, writing to log (a fresh one when log is empty).
func fleetConfig(t *testing.T, now *time.Time, host, log string) Config {
	t.Helper()
	cfg := testConfig(t, now)
	cfg.Peer = host
	if log != "" {
		cfg.LogPath = log
	}
	cfg.Fleet = FleetPolicy{Failures: 12, Hosts: 3, Window: time.Hour}
	return cfg
}

func fail(t *testing.T, cfg Config, batch string) Result {
	t.Helper()
	res, err := Fail(context.Background(), cfg, strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// report is one failure report line: n failures of addr at t.
func report(addr string, t time.Time, n int) string {
	return fmt.Sprintf("%s jail=sshd time=%d failures=%d\n", addr, t.Unix(), n)
}

// TestFleetThreshold: an address that fails 3 times on each host in turn
// gets one fleet line at the 12th failure, from the 4th host, and not
// before; its failures are then forgotten, so more failures do not write
// another line until the threshold is reached again.
func TestFleetThreshold(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	const addr = "203.0.113.7"
	for i, host := range []string{"h1", "h2", "h3", "h4"} {
		cfg := fleetConfig(t, &now, host, log)
		for range 3 {
			now = now.Add(10 * time.Second)
			res := fail(t, cfg, report(addr, now, 1))
			if res.Accepted != 1 || len(res.Refused) != 0 {
				t.Fatalf("%s: %+v, want 1 accepted", host, res)
			}
		}
		lines := logLines(t, log, logline.Fleet)
		if want := max(0, i-2); len(lines) != want {
			t.Fatalf("after %d failures on %d hosts: %d fleet lines %q, want %d", 3*(i+1), i+1, len(lines), lines, want)
		}
	}
	lines := logLines(t, log, logline.Fleet)
	want := now.Format(logline.TimeLayout) + " banpush: fleet " + addr + fmt.Sprintf(" peer=h4 jail=sshd time=%d failures=12 hosts=4", now.Unix())
	if lines[0] != want {
		t.Errorf("fleet line %q, want %q", lines[0], want)
	}
	// Forgotten: 11 more failures over 4 hosts make no second line.
	for i := range 11 {
		now = now.Add(time.Second)
		fail(t, fleetConfig(t, &now, fmt.Sprintf("h%d", 1+i%4), log), report(addr, now, 1))
	}
	if got := logLines(t, log, logline.Fleet); len(got) != 1 {
		t.Errorf("11 failures after the fleet ban: %d fleet lines, want 1", len(got))
	}
}

// TestFleetTrust: one host alone, however much it reports, makes no fleet
// line; two hosts with the threshold's failures neither (K = 3); and one
// host's failures count for at most T/K: a host that reports 1,000 failures
// and two that report one each do not reach T = 12.
func TestFleetTrust(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	loud := fleetConfig(t, &now, "loud", log)
	loud.MaxBurst = 1_000_000
	for range 1000 {
		fail(t, loud, report("203.0.113.7", now, record.MaxFailures))
	}
	fail(t, fleetConfig(t, &now, "h2", log), report("203.0.113.8", now, 20))
	fail(t, fleetConfig(t, &now, "h3", log), report("203.0.113.8", now, 20))
	fail(t, fleetConfig(t, &now, "h2", log), report("203.0.113.7", now, 1))
	fail(t, fleetConfig(t, &now, "h3", log), report("203.0.113.7", now, 1))
	if got := logLines(t, log, logline.Fleet); len(got) != 0 {
		t.Fatalf("fleet lines %q, want none", got)
	}
	// Three honest hosts with 4 each (12) do.
	fail(t, fleetConfig(t, &now, "h2", log), report("203.0.113.8", now, 1))
	fail(t, fleetConfig(t, &now, "h4", log), report("203.0.113.8", now, 4))
	if got := logLines(t, log, logline.Fleet); len(got) != 1 || !strings.Contains(got[0], " 203.0.113.8 ") {
		t.Errorf("fleet lines %q, want one for 203.0.113.8", got)
	}
}

// TestFleetWindow: failures older than the window count nothing, a report
// of one is refused, and a report from the future counts as now.
func TestFleetWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	old := now
	for _, h := range []string{"h1", "h2"} {
		fail(t, fleetConfig(t, &now, h, log), report("203.0.113.7", old, 4))
	}
	now = now.Add(time.Hour)
	res := fail(t, fleetConfig(t, &now, "h3", log), report("203.0.113.7", old, 4))
	if res.Accepted != 0 || len(res.Refused) != 1 || res.Refused[0].Reason != record.ErrOldFailure {
		t.Errorf("a report an hour old: %+v, want refused as %q", res, record.ErrOldFailure)
	}
	fail(t, fleetConfig(t, &now, "h3", log), report("203.0.113.7", now.Add(24*time.Hour), 4))
	if got := logLines(t, log, logline.Fleet); len(got) != 0 {
		t.Fatalf("fleet lines %q with the first 8 failures outside the window, want none", got)
	}
	b, err := os.ReadFile(log + ".fleet")
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("h3 203.0.113.7 %d,", now.Unix())) {
		t.Errorf("LOG.fleet %q (%v): want h3's future failures at now", b, err)
	}
	for _, h := range []string{"h1", "h2"} {
		fail(t, fleetConfig(t, &now, h, log), report("203.0.113.7", now, 4))
	}
	if got := logLines(t, log, logline.Fleet); len(got) != 1 {
		t.Errorf("fleet lines %q, want one once 12 failures are in the window", got)
	}
}

// TestFleetRefusals: a key without the policy has every report refused; a
// report spends a token of the bucket; a report passes the address
// policy; a failures field is refused outside a failure report.
func TestFleetRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	off := testConfig(t, &now)
	res := fail(t, off, report("203.0.113.7", now, 1)+report("203.0.113.8", now, 1))
	if len(res.Refused) != 2 || res.Refused[0].Reason != record.ErrFleetOff {
		t.Errorf("without --fleet: %+v, want both refused as %q", res, record.ErrFleetOff)
	}

	cfg := fleetConfig(t, &now, "h1", "")
	cfg.MaxBurst, cfg.MaxPerMinute = 2, 0
	res = fail(t, cfg, report("203.0.113.7", now, 1)+report("192.168.1.1", now, 1)+report("203.0.113.8", now, 1)+report("203.0.113.9", now, 1))
	if res.Accepted != 2 || res.Limited != 1 || res.LimitedFrom != 4 || len(res.Refused) != 2 || res.Refused[0].Reason != record.ErrPrivate {
		t.Errorf("a bucket of 2: %+v, want 2 accepted, the private one refused, the 4th limited", res)
	}

	ban := fleetConfig(t, &now, "h1", "")
	r := accept(t, ban, "203.0.113.7 failures=3\n")
	if len(r.Refused) != 1 || r.Refused[0].Reason != record.ErrNotAReport {
		t.Errorf("a ban with failures: %+v, want refused as %q", r, record.ErrNotAReport)
	}
}

// TestFleetUnbanForgets: an unban of an address clears its failures: old
// failures and new ones do not add up to a fleet ban.
func TestFleetUnbanForgets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	for _, h := range []string{"h1", "h2", "h3"} {
		fail(t, fleetConfig(t, &now, h, log), report("203.0.113.7", now, 3))
	}
	admin := fleetConfig(t, &now, "admin", log)
	admin.AllowUnban = true
	if _, err := Unban(context.Background(), admin, strings.NewReader("203.0.113.7\n")); err != nil {
		t.Fatal(err)
	}
	fail(t, fleetConfig(t, &now, "h4", log), report("203.0.113.7", now, 3))
	if got := logLines(t, log, logline.Fleet); len(got) != 0 {
		t.Errorf("fleet lines %q after the unban, want none", got)
	}
}

// TestFleetMemoryBounded: a host that reports far more addresses than the
// memory holds fills at most the memory, and a host that comes later
// still gets its fair share: its reports are counted, not limited.
func TestFleetMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the fleet memory: full tier")
	}
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	loud := fleetConfig(t, &now, "loud", log)
	loud.MaxBurst = 1 << 30
	for start := 0; start < maxFleetEntries+500; start += 4000 {
		fail(t, loud, addrsReport(start, 4000, now))
	}
	m, err := loadFleet(log, now, time.Hour)
	if err != nil || m.n != maxFleetEntries {
		t.Fatalf("memory holds %d entries (%v), want %d", m.n, err, maxFleetEntries)
	}
	res := fail(t, fleetConfig(t, &now, "quiet", log), addrsReport(100_000, 100, now))
	if res.Accepted != 100 {
		t.Errorf("a second host under its share: %+v, want 100 accepted", res)
	}
	if fi, err := os.Stat(log + ".fleet"); err != nil || fi.Size() > maxFleetBytes {
		t.Errorf("LOG.fleet: %v, %v; want at most %d bytes", fi, err, maxFleetBytes)
	}
}

func addrsReport(start, n int, at time.Time) string {
	var b strings.Builder
	for _, a := range strings.Fields(addrs(start, n)) {
		fmt.Fprintf(&b, "%s time=%d\n", a, at.Unix())
	}
	return b.String()
}

// TestFleetConcurrentHosts: the hosts' receivers, run at once, count every
// failure once: 4 hosts each reporting 3 failures of 50 addresses, at the
// same time, make exactly one fleet line per address.
func TestFleetConcurrentHosts(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := fleetConfig(t, &now, "h1", "").LogPath
	var wg sync.WaitGroup
	for h := range 4 {
		cfg := fleetConfig(t, &now, fmt.Sprintf("h%d", h+1), log)
		wg.Go(func() {
			for range 3 {
				if _, err := Fail(context.Background(), cfg, strings.NewReader(addrsReport(0, 50, now))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := logLines(t, log, logline.Fleet); len(got) != 50 {
		t.Errorf("%d fleet lines, want 50", len(got))
	}
}

// FuzzFleetMemory: whatever LOG.fleet holds, the memory read from it is
// bounded and consistent, keeps only canonical addresses, valid names and
// times in the window (sorted, at most maxFleetTimes a host), and writes
// back to a file that reads as the same memory.
func FuzzFleetMemory(f *testing.F) {
	f.Add([]byte("h1 203.0.113.7 1800000000,1800000001\nh2 2001:db8::1 1799999999\n"))
	f.Add([]byte("garbage\n\x00\nh1 203.0.113.7\n../x 203.0.113.7 1800000000\nh1 203.0.113.7 ,,-1,x,99999999999999999999\n"))
	f.Add([]byte("h1 fe80::1%eth0 1800000000\nh1 ::ffff:203.0.113.7 1800000000\nh1 203.0.113.7 1800000001,1799990000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const oldest, now = 1_799_996_400, 1_800_000_000
		m := newFleetMemory("")
		m.parse(data, oldest, now)
		if m.n > maxFleetEntries {
			t.Fatalf("%d entries", m.n)
		}
		n := 0
		for a, hosts := range m.times {
			for h, ts := range hosts {
				n++
				if a.Zone() != "" || a.Is4In6() || !record.ValidName(h) || len(ts) == 0 || len(ts) > maxFleetTimes ||
					!slices.IsSorted(ts) || ts[0] <= oldest || ts[len(ts)-1] > now {
					t.Fatalf("kept %s %s %v", h, a, ts)
				}
			}
		}
		counted := 0
		for _, c := range m.count {
			counted += c
		}
		if n != m.n || counted != n {
			t.Fatalf("counted %d entries (%d by host), holds %d", m.n, counted, n)
		}
		again := newFleetMemory("")
		again.parse(m.marshal(), oldest, now)
		if !reflect.DeepEqual(again.times, m.times) {
			t.Fatalf("round trip: %v, want %v", again.times, m.times)
		}
	})
}
