package receive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

func quorumConfig(t *testing.T, now *time.Time, peer string) Config {
	t.Helper()
	cfg := testConfig(t, now)
	cfg.Peer = peer
	cfg.Quorum = time.Hour
	cfg.QuorumPeers = 2
	return cfg
}

// logLines returns the log's lines of the kind. Every line of the log must
// parse (logline.Parse): the receiver writes nothing else.
func logLines(t *testing.T, path string, kind logline.Kind) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" && len(b) == 0 {
			break
		}
		p, err := logline.Parse([]byte(l))
		if err != nil {
			t.Errorf("%s: the receiver wrote %q: %v", path, l, err)
			continue
		}
		if p.Kind == kind {
			out = append(out, l)
		}
	}
	return out
}

func accept(t *testing.T, cfg Config, batch string) Result {
	t.Helper()
	res, err := Accept(context.Background(), cfg, strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestQuorumOneReportPerWindow: a quorum peer that reports an address 50
// times within a minute has one report line for it and no quorum line; a
// second peer's report completes the quorum of 2; after the window the
// first peer's report is written again. Nothing is a ban line.
func TestQuorumOneReportPerWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := quorumConfig(t, &now, "a")
	for i := range 50 {
		now = time.Unix(1_800_000_000, 0).Add(time.Duration(i) * 1200 * time.Millisecond)
		res := accept(t, a, "203.0.113.7\n")
		if res.Accepted != 1 || len(res.Refused) != 0 || res.Repeated != min(i, 1) {
			t.Fatalf("push %d: %+v", i, res)
		}
	}
	if got := logLines(t, a.LogPath, logline.Report); len(got) != 1 || !strings.HasSuffix(got[0], " banpush: report 203.0.113.7 peer=a") {
		t.Fatalf("report lines after 50 pushes: %q", got)
	}
	if got := logLines(t, a.LogPath, logline.Quorum); len(got) != 0 {
		t.Fatalf("quorum lines from one peer: %q", got)
	}
	b := a
	b.Peer = "b"
	accept(t, b, "203.0.113.7 jail=sshd\n")
	if got := logLines(t, a.LogPath, logline.Quorum); len(got) != 1 || !strings.HasSuffix(got[0], " banpush: quorum 203.0.113.7 peer=b jail=sshd reports=2") {
		t.Fatalf("quorum lines after a second peer: %q", got)
	}
	now = time.Unix(1_800_000_000, 0).Add(time.Hour + 30*time.Second)
	accept(t, a, "203.0.113.7\n203.0.113.8\n")
	if got := logLines(t, a.LogPath, logline.Report); len(got) != 4 {
		t.Errorf("report lines: %q, want a's first, b's, a's after the window, a's other address", got)
	}
	if got := logLines(t, a.LogPath, logline.Ban); len(got) != 0 {
		t.Errorf("ban lines from quorum peers: %q", got)
	}
	full := a
	full.Peer, full.Quorum = "c", 0
	accept(t, full, "203.0.113.9\n203.0.113.9\n")
	if got := logLines(t, a.LogPath, logline.Ban); len(got) != 1 || !strings.HasSuffix(got[0], " banpush: ban 203.0.113.9 peer=c") {
		t.Errorf("a full-trust peer's ban lines: %q", got)
	}
}

// TestQuorumOnePeerNeverBans: one peer reporting an address again and
// again, at every second around and across window boundaries, for three
// windows, never completes a quorum of 2: it is one peer however often it
// reports, which is why the receiver counts and fail2ban does not.
func TestQuorumOnePeerNeverBans(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	now := start
	a := quorumConfig(t, &now, "a")
	a.Quorum = time.Minute
	a.MaxBurst = 1000
	for s := 0; s <= 180; s++ {
		now = start.Add(time.Duration(s) * time.Second)
		accept(t, a, "203.0.113.7\n")
	}
	if got := logLines(t, a.LogPath, logline.Quorum); len(got) != 0 {
		t.Errorf("quorum lines from one peer: %q", got)
	}
	if got := logLines(t, a.LogPath, logline.Report); len(got) != 4 {
		t.Errorf("%d report lines, want 4 (at 0, 60, 120 and 180 s)", len(got))
	}
}

// TestQuorumThree: with --quorum 3, two peers are not enough and the third
// completes it, within the window; a report that expired does not count.
func TestQuorumThree(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	now := start
	cfg := quorumConfig(t, &now, "a")
	cfg.QuorumPeers = 3
	for i, p := range []string{"a", "b"} {
		c := cfg
		c.Peer = p
		now = start.Add(time.Duration(i) * 30 * time.Minute)
		accept(t, c, "203.0.113.7\n")
	}
	// a's report (at 0) has expired at 61 min; b's (30 min) has not.
	now = start.Add(61 * time.Minute)
	c := cfg
	c.Peer = "c"
	accept(t, c, "203.0.113.7\n")
	if got := logLines(t, cfg.LogPath, logline.Quorum); len(got) != 0 {
		t.Fatalf("quorum of 3 from b, c and an expired report of a: %q", got)
	}
	c.Peer = "d"
	accept(t, c, "203.0.113.7\n")
	if got := logLines(t, cfg.LogPath, logline.Quorum); len(got) != 1 || !strings.HasSuffix(got[0], " peer=d reports=3") {
		t.Errorf("quorum lines: %q, want one from d with 3 reports", got)
	}
}

// TestQuorumMixedWindows: lines with different windows share the memory;
// a peer with a short window does not make the others' reports expire.
func TestQuorumMixedWindows(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	now := start
	a := quorumConfig(t, &now, "a")
	accept(t, a, "203.0.113.7\n")
	b := a
	b.Peer, b.Quorum = "b", time.Minute
	now = start.Add(2 * time.Minute)
	accept(t, b, "203.0.113.8\n")
	now = start.Add(3 * time.Minute)
	if res := accept(t, a, "203.0.113.7\n"); res.Repeated != 1 {
		t.Errorf("a's report 3 min later, after b's 1-minute line read the memory: %+v, want it repeated", res)
	}
	if got := logLines(t, a.LogPath, logline.Report); len(got) != 2 {
		t.Errorf("report lines %q, want a's and b's", got)
	}
}

// TestQuorumConcurrent: 20 receivers of one quorum peer reporting the same
// address at once write one report line (no lost update of the memory),
// and 20 peers at once write one each.
func TestQuorumConcurrent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	base := quorumConfig(t, &now, "a")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		cfg := base
		if i >= 20 {
			cfg.Peer = fmt.Sprintf("peer%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n")); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	lines := logLines(t, base.LogPath, logline.Report)
	if n := len(lines); n != 21 {
		t.Fatalf("%d report lines, want 21 (one of a, one each of 20 others)", n)
	}
	if n := strings.Count(strings.Join(lines, "\n"), " peer=a"); n != 1 {
		t.Errorf("%d report lines of a, want 1", n)
	}
}

// TestQuorumMemoryDamaged: damaged lines of LOG.quorum are dropped and the
// receiver goes on; entries it can read still count. A memory it cannot
// read at all, or a link in its place, writes nothing.
func TestQuorumMemoryDamaged(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := quorumConfig(t, &now, "a")
	damaged := "garbage\n\x00\xff\na 203.0.113.7\na not-an-address 1800003600\na 203.0.113.8 later\n" +
		"a 203.0.113.9 1800003590\n" + // a real report, 10 s ago
		"../x 203.0.113.10 1800003600\nb 203.0.113.11 99999999999999999999\nb 203.0.113.12 1800000000\n" // expired
	if err := os.WriteFile(cfg.LogPath+".quorum", []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	res := accept(t, cfg, "203.0.113.7\n203.0.113.8\n203.0.113.9\n")
	if res.Accepted != 3 || res.Repeated != 1 {
		t.Errorf("%+v, want 3 accepted, 1 of them (203.0.113.9) repeated", res)
	}
	if got := logLines(t, cfg.LogPath, logline.Report); len(got) != 2 {
		t.Errorf("report lines %q, want 203.0.113.7 and .8", got)
	}
	mem, _ := os.ReadFile(cfg.LogPath + ".quorum")
	if want := "a 203.0.113.7 1800003600\na 203.0.113.8 1800003600\na 203.0.113.9 1800003590\n"; string(mem) != want {
		t.Errorf("memory rewritten as %q, want %q", mem, want)
	}

	os.Remove(cfg.LogPath + ".quorum")
	if err := os.Symlink("/etc/passwd", cfg.LogPath+".quorum"); err != nil {
		t.Fatal(err)
	}
	before := logLines(t, cfg.LogPath, logline.Report)
	_, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.20\n"))
	var unwritable *WriteError
	if !errors.As(err, &unwritable) {
		t.Errorf("memory a symbolic link: got %v, want a WriteError", err)
	}
	if after := logLines(t, cfg.LogPath, logline.Report); len(after) != len(before) {
		t.Errorf("a report was written without its memory: %q", after)
	}
}

// TestQuorumForgetsUnwritten: a report that could not be written to the
// log is not remembered, so the peer's retry is written.
func TestQuorumForgetsUnwritten(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := quorumConfig(t, &now, "a")
	if err := os.Mkdir(cfg.LogPath, 0o700); err != nil { // a directory: the log cannot be opened
		t.Fatal(err)
	}
	if _, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n")); err == nil {
		t.Fatal("a log that is a directory was written")
	}
	os.Remove(cfg.LogPath)
	if res := accept(t, cfg, "203.0.113.7\n"); res.Repeated != 0 {
		t.Errorf("retry: %+v, want the report written", res)
	}
	if got := logLines(t, cfg.LogPath, logline.Report); len(got) != 1 {
		t.Errorf("report lines %q, want 1", got)
	}
}

// TestQuorumMemoryBound: a full memory refuses a new report of a peer at
// its share as rate-limited (a ban can come later, never from it), while a
// report it holds is still accepted as repeated, and a peer under its
// share takes the place of a report of the peer holding the most.
func TestQuorumMemoryBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := quorumConfig(t, &now, "a")
	var b strings.Builder
	for i := range maxQuorumEntries {
		fmt.Fprintf(&b, "p%d 2001:db8::%x %d\n", i%100, i, 1800000100+i)
	}
	b.WriteString("a 203.0.113.7 1800000100\n") // over the bound: not read
	if err := os.WriteFile(cfg.LogPath+".quorum", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Peer = "p1"
	if res := accept(t, other, "203.0.113.8\n"); res.Accepted != 0 || res.Limited != 1 {
		t.Errorf("new report of a peer at its share into a full memory: %+v, want it refused as rate-limited", res)
	}
	if res := accept(t, other, "2001:db8::1\n"); res.Repeated != 1 {
		t.Errorf("report the full memory holds: %+v, want it repeated", res)
	}
	if res := accept(t, cfg, "203.0.113.8\n"); res.Accepted != 1 || res.Repeated != 0 {
		t.Errorf("new report of a peer under its share: %+v, want it written", res)
	}
	mem, _ := os.ReadFile(cfg.LogPath + ".quorum")
	if n := strings.Count(string(mem), "\n"); n != maxQuorumEntries {
		t.Errorf("memory holds %d entries, want %d", n, maxQuorumEntries)
	}
	if strings.Contains(string(mem), "p0 2001:db8:: 1800000100\n") || !strings.Contains(string(mem), "a 203.0.113.8 ") {
		t.Errorf("memory did not trade p0's first-expiring report for a's")
	}
}

func TestQuorumWindowChecked(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, w := range []time.Duration{-time.Second, time.Second, 59 * time.Second, 1500 * time.Millisecond, MaxQuorumWindow + time.Second} {
		cfg := quorumConfig(t, &now, "a")
		cfg.Quorum = w
		var ae *ArgError
		if err := cfg.Check(); !errors.As(err, &ae) || ae.Flag != "--quorum-window" {
			t.Errorf("window %v: got %v, want an ArgError for --quorum-window", w, err)
		}
	}
}

// FuzzQuorumMemory: whatever LOG.quorum holds, parsing keeps only entries
// with a valid peer name, an address without a zone and a time inside the
// window, at most maxQuorumEntries of them, and what it keeps marshals to
// lines that parse back to the same memory.
func FuzzQuorumMemory(f *testing.F) {
	f.Add([]byte("a 203.0.113.7 1800000000\nb 2001:db8::1 1799999999\n"))
	f.Add([]byte("garbage\n\x00\na 203.0.113.7\n../x 203.0.113.7 1800000000\n"))
	f.Add([]byte("a fe80::1%eth0 1800000000\na ::ffff:203.0.113.7 1800000000\na 203.0.113.7 1800000001\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const now = 1_799_996_400
		m := newQuorumMemory("")
		m.parse(data, now)
		if m.n > maxQuorumEntries {
			t.Fatalf("%d entries", m.n)
		}
		n := 0
		for a, peers := range m.reports {
			for p, exp := range peers {
				n++
				if a.Zone() != "" || a.Is4In6() || exp <= now || !record.ValidName(p) {
					t.Fatalf("kept %s %s %d", p, a, exp)
				}
			}
		}
		counted := 0
		for _, c := range m.count {
			counted += c
		}
		if n != m.n || counted != n {
			t.Fatalf("counted %d entries (%d by peer), holds %d", m.n, counted, n)
		}
		again := newQuorumMemory("")
		again.parse(m.marshal(), now)
		if again.n != m.n {
			t.Fatalf("round trip: %d entries, want %d", again.n, m.n)
		}
	})
}
