package unbanlog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/record"
)

// fakeF2B records the unbans it is asked for; err, when set, fails them.
// banned holds "JAIL ADDRESS" keys; started, when it has the key, when
// that ban started (else long ago).
type fakeF2B struct {
	calls   []string
	banned  map[string]bool
	started map[string]time.Time
	err     error
}

func (f *fakeF2B) EachBan(_ context.Context, jail string, fn func(f2b.Ban) error) error {
	if f.err != nil {
		return f.err
	}
	for k := range f.banned {
		j, a, _ := strings.Cut(k, " ")
		if j == jail {
			if err := fn(f2b.Ban{Addr: netip.MustParseAddr(a), Jail: j, Time: f.started[k].Unix(), BanTime: 600}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeF2B) Unban(_ context.Context, jail string, addr netip.Addr) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	f.calls = append(f.calls, jail+" "+addr.String())
	k := jail + " " + addr.String()
	was := f.banned[k]
	delete(f.banned, k)
	return was, nil
}

var now = time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC)

func unbanLine(addr string, ago time.Duration) string {
	return now.Add(-ago).Format(logline.TimeLayout) + " banpush: unban " + addr + " peer=web1 jail=sshd\n"
}

func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		Log:    filepath.Join(dir, "received.log"),
		State:  filepath.Join(dir, "state", "cursor"),
		Jails:  []string{"banpush", "banpush-quorum"},
		MaxAge: time.Hour,
		Now:    func() time.Time { return now },
	}
}

func TestApply(t *testing.T) {
	cfg := testConfig(t)
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	appendFile(t, cfg.Log, strings.Join([]string{
		unbanLine("203.0.113.7", time.Minute),
		now.Format(logline.TimeLayout) + " banpush: ban 203.0.113.8 peer=web1\n",
		unbanLine("203.0.113.9", 2*time.Hour),   // too old
		unbanLine("203.0.113.10", -2*time.Hour), // from the future
		unbanLine("10.0.0.1", time.Minute),      // private
		unbanLine("127.0.0.1", time.Minute),     // loopback
		unbanLine("203.0.113.7", 0),             // already applied
		unbanLine("1.2.3.4;rm", 0),              // bad
		"garbage\n",                             // bad
		unbanLine("2001:db8::1", time.Second),   // applied
		unbanLine("203.0.113.11", 0)[:20],       // being written
	}, ""))
	// 2001:db8::1 was banned again in banpush-quorum after its unban
	// line: that newer ban stays. 203.0.113.7 is not banned in
	// banpush-quorum: nothing to lift there.
	f := &fakeF2B{banned: map[string]bool{
		"banpush 203.0.113.7": true, "banpush 2001:db8::1": true, "banpush-quorum 2001:db8::1": true,
		"banpush 203.0.113.11": true, "banpush-quorum 203.0.113.11": true, "banpush 10.0.0.1": true,
	}, started: map[string]time.Time{"banpush-quorum 2001:db8::1": now}}
	rep, err := Apply(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	want := "banpush 203.0.113.7|banpush 2001:db8::1"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("calls: got %s, want %s", got, want)
	}
	wantSkipped := Skipped{Bad: 2, Old: 2, NotBanned: 1, Newer: 1, Refused: 1, Duplicate: 1, Held: 1}
	if rep.Skipped != wantSkipped || rep.Other != 1 || rep.Unbans != 7 || rep.Calls != 2 || rep.Lifted != 2 || len(rep.Applied) != 2 || rep.Start != logtail.StartFirst || rep.Held != 1 {
		t.Errorf("report: got %+v", rep)
	}
	if !f.banned["banpush-quorum 2001:db8::1"] {
		t.Error("the ban made after the unban line was lifted")
	}

	// Again: nothing new, nothing applied; then the cut line completes.
	f.calls = nil
	if rep, err = Apply(context.Background(), cfg, f); err != nil || len(f.calls) != 0 || rep.Start != logtail.StartContinued {
		t.Fatalf("second run: %v, calls %q, %+v", err, f.calls, rep)
	}
	appendFile(t, cfg.Log, unbanLine("203.0.113.11", 0)[20:])
	if _, err = Apply(context.Background(), cfg, f); err != nil || strings.Join(f.calls, "|") != "banpush 203.0.113.11|banpush-quorum 203.0.113.11" {
		t.Fatalf("third run: %v, calls %q", err, f.calls)
	}

	// The private address was held, not passed over: it is applied once
	// the settings take it (AllowPrivate), without reading the log again;
	// the loopback address never is.
	cfg.Policy.AllowPrivate = true
	f.calls = nil
	if rep, err = Apply(context.Background(), cfg, f); err != nil || strings.Join(f.calls, "|") != "banpush 10.0.0.1" || rep.Held != 0 {
		t.Fatalf("AllowPrivate: %v, calls %q, %+v", err, f.calls, rep)
	}
	if _, err := os.Stat(cfg.State + ".held"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nothing held, and %s.held is there: %v", cfg.State, err)
	}
}

// TestApplyHeld: an unban of a private address is applied where the
// receiver line of its peer has --allow-private (Config.Receivers), for
// that peer only, or for any peer through a cert-authority line; elsewhere
// it is held, not passed over, and applied once a line takes it, within
// MaxAge. A held unban survives a fail2ban that does not answer.
func TestApplyHeld(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jails = []string{"banpush"}
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	line := func(addr, peer string, ago time.Duration) string {
		return now.Add(-ago).Format(logline.TimeLayout) + " banpush: unban " + addr + " peer=" + peer + "\n"
	}
	appendFile(t, cfg.Log, line("10.0.0.1", "Web1.example", time.Minute)+line("10.0.0.2", "db", time.Minute)+
		line("100.64.0.3", "db", 50*time.Minute)+line("127.0.0.1", "web1", 0))
	f := &fakeF2B{banned: map[string]bool{"banpush 10.0.0.1": true, "banpush 10.0.0.2": true, "banpush 100.64.0.3": true}}
	asked := 0
	receivers := []Receiver{{Peer: "web1", Policy: record.Policy{AllowPrivate: true}}, {Peer: "db"}}
	cfg.Receivers = func() []Receiver { asked++; return receivers }
	rep, err := Apply(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "|"); got != "banpush 10.0.0.1" || asked != 1 {
		t.Errorf("calls %q, receivers asked %d times; want web1's private address only, asked once", got, asked)
	}
	if rep.Skipped.Held != 2 || rep.Held != 2 || rep.Skipped.Refused != 1 {
		t.Errorf("report %+v, want db's two unbans held and the loopback address refused", rep)
	}

	// fail2ban does not answer: what was held stays held.
	receivers = []Receiver{{AnyPeer: true, Policy: record.Policy{AllowPrivate: true}}}
	f.err = f2b.ErrNotRunning
	if rep, err = Apply(context.Background(), cfg, f); !errors.Is(err, f2b.ErrNotRunning) || rep.Held != 2 {
		t.Fatalf("fail2ban down: %v, %+v; want ErrNotRunning and both still held", err, rep)
	}

	// A cert-authority line with --allow-private takes any peer's: the
	// held unbans are applied, the log not read again.
	f.err, f.calls = nil, nil
	if rep, err = Apply(context.Background(), cfg, f); err != nil || strings.Join(f.calls, "|") != "banpush 10.0.0.2|banpush 100.64.0.3" || rep.Held != 0 || rep.Unbans != 0 {
		t.Fatalf("once a line takes them: %v, calls %q, %+v", err, f.calls, rep)
	}

	// Held past MaxAge: dropped, never applied.
	receivers = nil
	appendFile(t, cfg.Log, line("10.0.0.9", "db", 0))
	if rep, err = Apply(context.Background(), cfg, f); err != nil || rep.Held != 1 {
		t.Fatalf("held again: %v, %+v", err, rep)
	}
	cfg.Now = func() time.Time { return now.Add(2 * time.Hour) }
	receivers = []Receiver{{AnyPeer: true, Policy: record.Policy{AllowPrivate: true}}}
	f.calls = nil
	if rep, err = Apply(context.Background(), cfg, f); err != nil || len(f.calls) != 0 || rep.Held != 0 || rep.Skipped.Old != 1 {
		t.Fatalf("past MaxAge: %v, calls %q, %+v; want it dropped as old", err, f.calls, rep)
	}
}

// TestHold: an address held twice by one peer is held once, with the later
// time; past MaxHeld the oldest goes.
func TestHold(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	held, dropped := hold(nil, Held{Addr: a, Peer: "Web1", Stamp: now})
	held, _ = hold(held, Held{Addr: a, Peer: "web1.example", Stamp: now.Add(time.Minute)})
	held, _ = hold(held, Held{Addr: a, Peer: "db", Stamp: now})
	if dropped || len(held) != 2 || !held[0].Stamp.Equal(now.Add(time.Minute)) {
		t.Fatalf("got %+v", held)
	}
	held = nil
	for i := range MaxHeld + 1 {
		held, dropped = hold(held, Held{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Peer: "db", Stamp: now.Add(time.Duration(i) * time.Second)})
	}
	if !dropped || len(held) != MaxHeld || held[0].Addr != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("past MaxHeld: dropped %v, %d held, first %v; want the oldest (10.0.0.0) gone", dropped, len(held), held[0].Addr)
	}
}

// TestLoadHeld: STATE.held is read only as a plain file of well-formed
// entries.
func TestLoadHeld(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "cursor")
	want := []Held{{Addr: netip.MustParseAddr("10.0.0.1"), Peer: "db", Stamp: now}}
	if err := saveHeld(state, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadHeld(state)
	if err != nil || len(got) != 1 || got[0].Addr != want[0].Addr || got[0].Peer != "db" || !got[0].Stamp.Equal(now) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	for name, content := range map[string]string{
		"not JSON":       "oops",
		"a bad peer":     `[{"addr":"10.0.0.1","peer":"x$(id)","stamp":"2026-11-30T09:30:00Z"}]`,
		"a mapped form":  `[{"addr":"::ffff:10.0.0.1","peer":"db","stamp":"2026-11-30T09:30:00Z"}]`,
		"an unknown key": `[{"addr":"10.0.0.1","peer":"db","stamp":"2026-11-30T09:30:00Z","jail":"sshd"}]`,
		"no time":        `[{"addr":"10.0.0.1","peer":"db"}]`,
	} {
		os.WriteFile(state+".held", []byte(content), 0o600)
		if _, err := loadHeld(state); err == nil {
			t.Errorf("%s: read", name)
		}
	}
	os.Remove(state + ".held")
	os.Symlink("/etc/passwd", state+".held")
	if _, err := loadHeld(state); err == nil {
		t.Error("a link: read")
	}
	os.Remove(state + ".held")
	if err := saveHeld(state, nil); err != nil {
		t.Errorf("nothing to hold, no file: %v", err)
	}
}

// TestApplyFailureKeepsCursor: when fail2ban does not answer, the cursor
// stays before the line that failed, and the next run applies it.
func TestApplyFailureKeepsCursor(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jails = []string{"banpush"}
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	appendFile(t, cfg.Log, unbanLine("203.0.113.1", 0))
	f := &fakeF2B{banned: map[string]bool{"banpush 203.0.113.1": true, "banpush 203.0.113.2": true, "banpush 203.0.113.3": true}}
	if _, err := Apply(context.Background(), cfg, f); err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfg.Log, unbanLine("203.0.113.2", 0)+unbanLine("203.0.113.3", 0))
	f.err = f2b.ErrNotRunning
	if _, err := Apply(context.Background(), cfg, f); !errors.Is(err, f2b.ErrNotRunning) {
		t.Fatalf("got %v, want ErrNotRunning", err)
	}
	f.err = nil
	f.calls = nil
	if _, err := Apply(context.Background(), cfg, f); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "|"); got != "banpush 203.0.113.2|banpush 203.0.113.3" {
		t.Errorf("after fail2ban came back: got %s", got)
	}
}

func TestApplyRefusesUnsafeState(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Dir(cfg.State)
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	appendFile(t, cfg.Log, unbanLine("203.0.113.1", 0))
	if _, err := Apply(context.Background(), cfg, &fakeF2B{}); !errors.Is(err, logtail.ErrUnsafeState) {
		t.Fatalf("a world-writable state directory: got %v, want ErrUnsafeState", err)
	}
	cfg.Jails = []string{"bad jail"}
	os.Chmod(dir, 0o700)
	if _, err := Apply(context.Background(), cfg, &fakeF2B{}); err == nil {
		t.Fatal("a bad jail name: accepted")
	}
}

// TestApplyFlood: 100,000 hostile lines take no call and bounded time.
func TestApplyFlood(t *testing.T) {
	cfg := testConfig(t)
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	var b strings.Builder
	hostile := []string{"1.2.3.4;rm", "1.2.3.4 peer=x$(id)", "fe80::1%eth0", "1.2.3.0/24", "::ffff:1.2.3.4", "1.2.3.4\x00", "1.2.3.4\xc3\xa9"}
	for i := range 100000 {
		fmt.Fprintf(&b, "%s", unbanLine(hostile[i%len(hostile)], 0))
		if i%1000 == 0 {
			b.WriteString(strings.Repeat("A", 10000) + "\n")
		}
	}
	appendFile(t, cfg.Log, b.String())
	f := &fakeF2B{}
	start := time.Now()
	rep, err := Apply(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 || rep.Skipped.Bad != 100100 {
		t.Errorf("got %d calls, %+v", len(f.calls), rep.Skipped)
	}
	t.Logf("100,100 hostile lines in %v", time.Since(start))
}
