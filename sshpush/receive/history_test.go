package receive

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHistory: the latest line of an address decides; a ban older than
// maxBanAge is none; the history starts a new file past its bound and
// still reads the one before; a link in its place is refused.
func TestHistory(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	log := testConfig(t, &now).LogPath
	a, b, c, d := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3"), netip.MustParseAddr("2001:db8::4")
	var ev []byte
	ev = appendEvent(ev, a, now.Unix()-60, historyBan)
	ev = appendEvent(ev, b, now.Unix()-60, historyBan)
	ev = appendEvent(ev, b, now.Unix()-30, historyUnban)
	ev = appendEvent(ev, c, now.Add(-maxBanAge).Unix()-1, historyBan)
	if err := appendHistory(log, ev); err != nil {
		t.Fatal(err)
	}
	// Fill past the bound with other addresses: the lines above move to
	// LOG.history.1 and still count.
	filler := []byte(strings.Repeat("2001:db8::ffff 1800000000 ban\n", maxHistoryBytes/30/4))
	for range 5 {
		if err := appendHistory(log, filler); err != nil {
			t.Fatal(err)
		}
	}
	if err := appendHistory(log, appendEvent(nil, d, now.Unix(), historyBan)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{log + ".history", log + ".history.1"} {
		fi, err := os.Stat(name)
		if err != nil || fi.Size() > maxHistoryBytes || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want at most %d bytes, mode 0600", name, err, maxHistoryBytes)
		}
	}
	got, err := bannedHere(log, []netip.Addr{a, b, c, d, netip.MustParseAddr("203.0.113.9")}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{a: true, b: false, c: false, d: true}
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("banned here %s: %v, want %v", addr, got[addr], w)
		}
	}
	// One more roll-over: a's line has left the history.
	for range 5 {
		appendHistory(log, filler)
	}
	if got, _ := bannedHere(log, []netip.Addr{a}, now); got[a] {
		t.Error("a ban that left the history still counts")
	}

	os.Remove(log + ".history")
	if err := os.Symlink("/etc/passwd", log+".history"); err != nil {
		t.Fatal(err)
	}
	if _, err := bannedHere(log, []netip.Addr{a}, now); err == nil {
		t.Error("a history that is a link was read")
	}
	cfg := testConfig(t, &now)
	cfg.LogPath, cfg.AllowUnban = log, true
	var unwritable *WriteError
	if _, err := Unban(context.Background(), cfg, strings.NewReader("203.0.113.1\n")); !errors.As(err, &unwritable) {
		t.Errorf("unban with a history that is a link: %v, want a WriteError", err)
	}
}
