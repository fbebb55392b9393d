package receive

import (
	"context"
	"maps"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

func unban(t *testing.T, cfg Config, batch string) Result {
	t.Helper()
	res, err := Unban(context.Background(), cfg, strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func reasons(res Result) []record.Refusal {
	var out []record.Refusal
	for _, r := range res.Refused {
		out = append(out, r.Reason)
	}
	return out
}

// TestUnbanNotAllowed: a key without --allow-unban has every unban
// refused, and nothing is written or remembered.
func TestUnbanNotAllowed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	res := unban(t, cfg, "203.0.113.7\n198.51.100.1 jail=sshd\n")
	if res.Accepted != 0 || !reflect.DeepEqual(reasons(res), []record.Refusal{record.ErrUnbanDenied, record.ErrUnbanDenied}) {
		t.Fatalf("got %+v, want both refused: %s", res, record.ErrUnbanDenied)
	}
	if n := countLines(t, cfg.LogPath); n != 0 {
		t.Errorf("log has %d lines", n)
	}
	if _, err := os.Stat(cfg.LogPath + ".unbans"); !os.IsNotExist(err) {
		t.Errorf("unban memory written: %v", err)
	}
	// A later ban of the address is not stale: nothing was unbanned.
	if res := accept(t, cfg, "203.0.113.7\n"); res.Accepted != 1 {
		t.Errorf("ban after a refused unban: %+v", res)
	}
}

// TestUnbanWindow: an unban is written as its own line; bans of the
// address it lifted are refused as stale for the banning key's window,
// then accepted again.
func TestUnbanWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	cfg.AllowUnban = true
	web3 := cfg
	web3.Peer, web3.AllowUnban = "web3", false
	now = now.Add(-time.Hour)
	accept(t, web3, "203.0.113.7\n198.51.100.20\n") // banned here, for the unbans to lift
	now = now.Add(time.Hour)
	res := unban(t, cfg, "203.0.113.7 jail=sshd time=1799999990 bantime=600\n10.0.0.1\n203.0.113.7\n")
	if res.Accepted != 1 || !reflect.DeepEqual(reasons(res), []record.Refusal{record.ErrPrivate, record.ErrDuplicateAddr}) {
		t.Fatalf("got %+v", res)
	}
	lines := logLines(t, cfg.LogPath, logline.Unban)
	want := "2027-01-15T08:00:00+00:00 banpush: unban 203.0.113.7 peer=web1 jail=sshd time=1799999990"
	if len(lines) != 1 || !strings.HasSuffix(lines[0], want[len("2027-01-15T08:00:00+00:00"):]) {
		t.Fatalf("unban lines %q, want one like %q", lines, want)
	}

	other := cfg
	other.Peer, other.AllowUnban = "web2", false
	for _, c := range []struct {
		after time.Duration
		cfg   Config
		stale bool
	}{
		{0, other, true},
		{DefaultUnbanWindow - time.Second, other, true},
		{DefaultUnbanWindow, other, false},
	} {
		now = time.Unix(1_800_000_000, 0).Add(c.after)
		res := accept(t, c.cfg, "203.0.113.7\n198.51.100.9\n")
		stale := len(res.Refused) == 1 && res.Refused[0].Reason == record.ErrStale && res.Refused[0].Line == 1
		if stale != c.stale || res.Accepted != 2-len(res.Refused) {
			t.Errorf("ban %v after the unban: %+v, want stale %v", c.after, res, c.stale)
		}
	}

	// A key's own window decides: one of 1 minute accepts sooner, one of
	// 0s at once.
	now = time.Unix(1_800_000_000, 0)
	unban(t, cfg, "198.51.100.20\n")
	short := other
	short.UnbanWindow = time.Minute
	now = now.Add(time.Minute)
	if res := accept(t, short, "198.51.100.20\n"); res.Accepted != 1 {
		t.Errorf("ban after a 1-minute window: %+v", res)
	}
	if res := accept(t, other, "198.51.100.20\n"); res.Accepted != 0 || reasons(res)[0] != record.ErrStale {
		t.Errorf("ban within the default window: %+v", res)
	}
	none := other
	none.UnbanWindow = 0
	if res := accept(t, none, "198.51.100.20\n"); res.Accepted != 1 {
		t.Errorf("ban with no window: %+v", res)
	}
}

// TestUnbanForgetsReports: an unban drops the quorum reports of its
// address, so that one new report after the stale window does not make a
// quorum with reports from before the unban.
func TestUnbanForgetsReports(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := quorumConfig(t, &now, "web1")
	b := a
	b.Peer = "web2"
	accept(t, a, "203.0.113.7\n")
	u := a
	u.Peer, u.AllowUnban, u.Quorum = "admin", true, 0
	unban(t, u, "203.0.113.7\n")
	now = now.Add(DefaultUnbanWindow)
	accept(t, b, "203.0.113.7\n")
	if q := logLines(t, a.LogPath, logline.Quorum); len(q) != 0 {
		t.Errorf("one report after the unban made a quorum: %q", q)
	}
	accept(t, a, "203.0.113.7\n")
	if q := logLines(t, a.LogPath, logline.Quorum); len(q) != 1 {
		t.Errorf("two fresh reports: quorum lines %q, want one", q)
	}
}

// TestUnbanRateLimited: unbans spend the peer's tokens; the ones past the
// bucket stay with the sender.
func TestUnbanRateLimited(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	cfg.AllowUnban, cfg.MaxBurst, cfg.MaxPerMinute = true, 3, 0
	res := unban(t, cfg, addrs(0, 5))
	if res.Accepted != 3 || res.Limited != 2 || res.LimitedFrom != 4 {
		t.Fatalf("got %+v, want 3 accepted and 2 limited from line 4", res)
	}
	if n := len(logLines(t, cfg.LogPath, logline.Unban)); n != 3 {
		t.Errorf("%d unban lines, want 3", n)
	}
}

// TestUnbanMemoryDamaged: damaged lines of LOG.unbans are dropped, old
// entries expire, and a symlink in its place is refused.
func TestUnbanMemoryDamaged(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	old := now.Add(-MaxUnbanWindow - time.Second).Unix()
	data := "garbage\n203.0.113.7 1800000000\n198.51.100.1 x\n198.51.100.2 " + strconv.FormatInt(old, 10) + "\nfe80::1%eth0 1800000000\n"
	if err := os.WriteFile(cfg.LogPath+".unbans", []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	res := accept(t, cfg, "203.0.113.7\n198.51.100.1\n198.51.100.2\n")
	if res.Accepted != 2 || len(res.Refused) != 1 || res.Refused[0].Reason != record.ErrStale {
		t.Errorf("got %+v, want only 203.0.113.7 stale", res)
	}

	os.Remove(cfg.LogPath + ".unbans")
	if err := os.Symlink("/etc/passwd", cfg.LogPath+".unbans"); err != nil {
		t.Fatal(err)
	}
	if _, err := Accept(context.Background(), cfg, strings.NewReader("198.51.100.3\n")); err == nil {
		t.Error("a symlinked unban memory was read")
	}
}

// FuzzUnbanMemory: whatever LOG.unbans holds, parsing keeps only entries
// with an address without a zone, a time inside MaxUnbanWindow, a valid
// peer name (or the older form's unknown peer) and a lifted time no later
// than the unban, at most maxUnbanEntries of them, counted per peer; and
// what it keeps marshals to lines that parse back to the same memory.
func FuzzUnbanMemory(f *testing.F) {
	f.Add([]byte("203.0.113.7 1800000000\n2001:db8::1 1799999999\n"))
	f.Add([]byte("garbage\n\x00\n203.0.113.7\n203.0.113.7 x\n"))
	f.Add([]byte("fe80::1%eth0 1800000000\n::ffff:203.0.113.7 1800000000\n203.0.113.7 1800000001\n1.2.3.0/24 1800000000\n"))
	f.Add([]byte("203.0.113.7 1800000000 web1 1800000000\n203.0.113.7 1799999000 web2 0\n203.0.113.7 1800000000 * 0\n203.0.113.8 1800000000 web1 1800000001\n"))
	f.Add([]byte("203.0.113.7 1800000000 web1 0\n203.0.113.7 1799999999 web1 1799999999\n203.0.113.7 1800000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Unix(1_800_000_000, 0)
		m := newUnbanMemory("")
		m.parse(data, now)
		if m.n > maxUnbanEntries {
			t.Fatalf("%d entries", m.n)
		}
		n, counted := 0, 0
		for a, peers := range m.at {
			for p, e := range peers {
				n++
				if a.Zone() != "" || a.Is4In6() || e.at < now.Add(-MaxUnbanWindow).Unix() || e.lifted < 0 || e.lifted > e.at ||
					!record.ValidName(p) && p != unknownPeer {
					t.Fatalf("kept %s %s %+v", a, p, e)
				}
			}
		}
		for _, c := range m.count {
			counted += c
		}
		if n != m.n || counted != n {
			t.Fatalf("%d entries, %d counted, %d held", m.n, counted, n)
		}
		again := newUnbanMemory("")
		again.parse(m.marshal(), now)
		if !maps.EqualFunc(again.at, m.at, maps.Equal) || !maps.Equal(again.count, m.count) {
			t.Fatalf("round trip: %v, want %v", again.at, m.at)
		}
	})
}
