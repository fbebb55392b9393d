package firewall

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/record"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	all := contribJails(t, "192.0.2.0/24", "2001:db8:1::/48")
	onlyBan := all[:1]
	ago := func(d time.Duration) time.Time { return now.Add(-d).In(time.FixedZone("", 3600)) }
	for _, c := range []struct {
		name    string
		jails   []Jail
		policy  record.Policy
		peerOK  bool
		line    []byte
		verdict Verdict
		end     time.Time // for a ban; zero: never
		skip    string
	}{
		{"ban", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(10*time.Minute), "203.0.113.7 jail=sshd bantime=60"), VerdictBan, now.Add(50 * time.Minute), ""},
		{"ban IPv6", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(0), "2001:db8::7"), VerdictBan, now.Add(time.Hour), ""},
		{"from the future", all, record.Policy{}, false, mustLine(t, logline.Ban, now.Add(time.Hour), "203.0.113.7"), VerdictBan, now.Add(time.Hour), ""},
		{"expired", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(time.Hour), "203.0.113.7"), VerdictNone, time.Time{}, "expired"},
		{"quorum", all, record.Policy{}, false, mustLine(t, logline.Quorum, ago(0), "203.0.113.7"), VerdictBan, now.Add(time.Hour), ""},
		{"fleet", all, record.Policy{}, false, mustLine(t, logline.Fleet, ago(0), "203.0.113.7 failures=12"), VerdictBan, now.Add(time.Hour), ""},
		{"report", all, record.Policy{}, false, mustLine(t, logline.Report, ago(0), "203.0.113.7"), VerdictNone, time.Time{}, "no_jail"},
		{"quorum, jail off", onlyBan, record.Policy{}, false, mustLine(t, logline.Quorum, ago(0), "203.0.113.7"), VerdictNone, time.Time{}, "no_jail"},
		{"fleet, jail off", onlyBan, record.Policy{}, false, mustLine(t, logline.Fleet, ago(0), "203.0.113.7 failures=12"), VerdictNone, time.Time{}, "no_jail"},
		{"ban, jail off", all[1:], record.Policy{}, false, mustLine(t, logline.Ban, ago(0), "203.0.113.7"), VerdictNone, time.Time{}, "no_jail"},
		{"unban", onlyBan, record.Policy{}, false, mustLine(t, logline.Unban, ago(0), "203.0.113.7"), VerdictLift, time.Time{}, ""},
		{"ignoreip", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(0), "192.0.2.7"), VerdictNone, time.Time{}, "ignored"},
		{"ignoreip IPv6", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(0), "2001:db8:1::7"), VerdictNone, time.Time{}, "ignored"},
		{"private", all, record.Policy{}, false, mustLine(t, logline.Ban, ago(0), "10.1.2.3"), VerdictNone, time.Time{}, "refused"},
		{"private allowed", all, record.Policy{AllowPrivate: true}, false, mustLine(t, logline.Ban, ago(0), "10.1.2.3"), VerdictBan, now.Add(time.Hour), ""},
		{"private, the peer's line allows", all, record.Policy{}, true, mustLine(t, logline.Ban, ago(0), "10.1.2.3"), VerdictBan, now.Add(time.Hour), ""},
		{"loopback", all, record.Policy{AllowPrivate: true}, true, mustLine(t, logline.Ban, ago(0), "127.0.0.1"), VerdictNone, time.Time{}, "refused"},
		{"this host", all, record.Policy{Local: []netip.Addr{netip.MustParseAddr("203.0.113.1")}}, true, mustLine(t, logline.Ban, ago(0), "203.0.113.1"), VerdictNone, time.Time{}, "refused"},
		{"not a line", all, record.Policy{}, false, []byte("2026-12-07T12:00:00+00:00 banpush: ban 203.0.113.7  peer=web1"), VerdictNone, time.Time{}, "bad"},
		{"garbage", all, record.Policy{}, false, []byte("\x00\xff"), VerdictNone, time.Time{}, "bad"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jails := slices.Clone(c.jails)
			cfg := Config{Jails: jails, Policy: c.policy, PeerAllows: func(string, netip.Addr) bool { return c.peerOK }}
			d := decide(&cfg, c.line, now)
			if d.Verdict != c.verdict || !d.End.Equal(c.end) || d.Skip != c.skip {
				t.Errorf("got %v until %v (skip %q), want %v until %v (skip %q)", d.Verdict, d.End, d.Skip, c.verdict, c.end, c.skip)
			}
		})
	}
	// A permanent bantime bans for ever, however old the line.
	perm := contribJails(t)
	perm[0].BanTime = 0
	d := decide(&Config{Jails: perm}, mustLine(t, logline.Ban, now.Add(-100*24*time.Hour), "203.0.113.7"), now)
	if d.Verdict != VerdictBan || !d.End.IsZero() {
		t.Errorf("permanent: %+v", d)
	}
	// A filter an admin narrowed bans only what it matches.
	narrow := contribJails(t)
	re, err := CompileFailregex(`^ banpush: ban <ADDR> peer=web1 jail=sshd$`)
	if err != nil {
		t.Fatal(err)
	}
	narrow[0].Filter = append(narrow[0].Filter[:0], re)
	if d := decide(&Config{Jails: narrow}, mustLine(t, logline.Ban, now, "203.0.113.7 jail=nginx"), now); d.Skip != "filter" {
		t.Errorf("a line the jail's filter does not match: %+v", d)
	}
	if d := decide(&Config{Jails: narrow}, mustLine(t, logline.Ban, now, "203.0.113.7 jail=sshd"), now); d.Verdict != VerdictBan {
		t.Errorf("a line the jail's filter matches: %+v", d)
	}
}

// fakeKernel is a kernel set in memory; it records each transaction.
type fakeKernel struct {
	m    map[netip.Addr]time.Time // end; zero: permanent
	now  func() time.Time
	adds []int // elements of each Add
	fail error
}

func newFake(now func() time.Time) *fakeKernel {
	return &fakeKernel{m: map[netip.Addr]time.Time{}, now: now}
}

func (k *fakeKernel) Ensure() error { return k.fail }

func (k *fakeKernel) Add(els []nftset.Element, replace []netip.Addr) error {
	if k.fail != nil {
		return k.fail
	}
	if len(els) > 0 {
		k.adds = append(k.adds, len(els))
	}
	for _, a := range replace {
		delete(k.m, a)
	}
	for _, e := range els {
		if _, ok := k.m[e.Addr]; ok {
			continue
		}
		end := time.Time{}
		if e.Timeout > 0 {
			end = k.now().Add(e.Timeout)
		}
		k.m[e.Addr] = end
	}
	return nil
}

func (k *fakeKernel) Delete(addrs []netip.Addr) error {
	if k.fail != nil {
		return k.fail
	}
	for _, a := range addrs {
		delete(k.m, a)
	}
	return nil
}

func (k *fakeKernel) List() ([]nftset.Member, error) {
	var out []nftset.Member
	for a, end := range k.m {
		m := nftset.Member{Addr: a}
		if !end.IsZero() {
			if !end.After(k.now()) {
				continue
			}
			m.Timeout, m.Expires = time.Hour, end.Sub(k.now())
		}
		out = append(out, m)
	}
	return out, k.fail
}

func (k *fakeKernel) has(a string) bool {
	end, ok := k.m[netip.MustParseAddr(a)]
	return ok && (end.IsZero() || end.After(k.now()))
}

// fixture is a log and a state directory of root's, for Start.
type fixture struct {
	log, state string
	clock      time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st := filepath.Join(dir, "state")
	if err := os.Mkdir(st, 0o700); err != nil {
		t.Fatal(err)
	}
	f := &fixture{log: filepath.Join(dir, "received.log"), state: filepath.Join(st, "cursor"), clock: now}
	if err := os.WriteFile(f.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) now() time.Time { return f.clock }

func (f *fixture) config(t *testing.T) Config {
	return Config{Log: f.log, State: f.state, Jails: contribJails(t, "192.0.2.0/24"), Now: f.now}
}

func (f *fixture) append(t *testing.T, lines ...[]byte) {
	t.Helper()
	fh, err := os.OpenFile(f.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, l := range lines {
		if _, err := fh.Write(append(slices.Clone(l), '\n')); err != nil {
			t.Fatal(err)
		}
	}
}

func start(t *testing.T, cfg Config, k Kernel) (*Engine, Report) {
	t.Helper()
	e, rep, err := Start(context.Background(), cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, rep
}

func run(t *testing.T, e *Engine) Report {
	t.Helper()
	rep, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestEngine: lines become bans in the kernel, unbans lift them, a
// restart and a reboot put back exactly the bans in force, in one batch.
func TestEngine(t *testing.T) {
	f := newFixture(t)
	k := newFake(f.now)
	e, rep := start(t, f.config(t), k)
	if rep.Restored != 0 {
		t.Errorf("first start restored %d", rep.Restored)
	}
	f.append(t,
		mustLine(t, logline.Ban, now.Add(-30*time.Minute), "203.0.113.1"), // 30 min left
		mustLine(t, logline.Ban, now.Add(-2*time.Hour), "203.0.113.2"),    // expired
		mustLine(t, logline.Ban, now, "203.0.113.3"),
		mustLine(t, logline.Ban, now, "192.0.2.3"),       // ignoreip
		mustLine(t, logline.Report, now, "203.0.113.4"),  // a report
		mustLine(t, logline.Quorum, now, "203.0.113.5"),  // quorum jail
		mustLine(t, logline.Ban, now, "2001:db8::6"),     //
		mustLine(t, logline.Unban, now, "203.0.113.3"),   // lifts .3
		mustLine(t, logline.Unban, now, "203.0.113.99"),  // nothing to lift
		mustLine(t, logline.Ban, now, "203.0.113.1"),     // lengthens .1
		mustLine(t, logline.Ban, now, "203.0.113.5"),     // already as long
		[]byte("2026-12-07T12:00:00+00:00 banpush: ban"), // bad
	)
	rep = run(t, e)
	want := Report{Start: "first", Lines: 12, Added: 3, Bans: 3, Skipped: Skipped{Bad: 1, NoJail: 1, Ignored: 1, Expired: 1, NotIn: 1, Known: 0}}
	if rep != want {
		t.Errorf("report %+v\nwant   %+v", rep, want)
	}
	for _, a := range []string{"203.0.113.1", "203.0.113.5", "2001:db8::6"} {
		if !k.has(a) {
			t.Errorf("%s not in the kernel", a)
		}
	}
	for _, a := range []string{"203.0.113.2", "203.0.113.3", "192.0.2.3", "203.0.113.4"} {
		if k.has(a) {
			t.Errorf("%s in the kernel", a)
		}
	}
	if end := k.m[netip.MustParseAddr("203.0.113.1")]; !end.Equal(now.Add(time.Hour)) {
		t.Errorf("203.0.113.1 ends %v, want an hour from now (the longer ban)", end)
	}

	// An unban in a later run lifts from the kernel and the state; a
	// repeated ban is known.
	f.clock = now.Add(time.Minute)
	f.append(t, mustLine(t, logline.Unban, f.clock, "2001:db8::6"), mustLine(t, logline.Ban, now, "203.0.113.5"))
	rep = run(t, e)
	if rep.Lifted != 1 || rep.Skipped.Known != 1 || rep.Bans != 2 || k.has("2001:db8::6") {
		t.Errorf("second run: %+v", rep)
	}
	if rep := run(t, e); rep.Lines != 0 || rep.Added != 0 {
		t.Errorf("a run with nothing new: %+v", rep)
	}
	e.Close()

	// A restart with the kernel as it was adds nothing.
	e, rep = start(t, f.config(t), k)
	if rep.Restored != 0 || rep.Bans != 2 {
		t.Errorf("restart: %+v", rep)
	}
	e.Close()

	// A reboot: the kernel is empty; an hour and a half later, .5 has
	// expired and .1 with it; nothing is read from the log again.
	k = newFake(f.now)
	f.clock = now.Add(50 * time.Minute)
	e, rep = start(t, f.config(t), k)
	if rep.Restored != 2 || len(k.adds) != 1 || !k.has("203.0.113.1") || !k.has("203.0.113.5") {
		t.Errorf("reboot: %+v, kernel %v, adds %v", rep, k.m, k.adds)
	}
	if rep := run(t, e); rep.Lines != 0 {
		t.Errorf("after the reboot the log was read again: %+v", rep)
	}
	e.Close()
	k = newFake(f.now)
	f.clock = now.Add(2 * time.Hour)
	e, rep = start(t, f.config(t), k)
	if rep.Restored != 0 || rep.Skipped.Outdated != 2 || len(k.m) != 0 {
		t.Errorf("restart after every ban ran out: %+v, kernel %v", rep, k.m)
	}
	e.Close()
}

// TestEngineKernelFails: a kernel that refuses the batch leaves the
// cursor where it was; once it takes batches, the lines are applied.
func TestEngineKernelFails(t *testing.T) {
	f := newFixture(t)
	k := newFake(f.now)
	e, _ := start(t, f.config(t), k)
	f.append(t, mustLine(t, logline.Ban, now, "203.0.113.1"))
	k.fail = errors.New("no netlink")
	if _, err := e.Run(context.Background()); err == nil {
		t.Fatal("Run with a failing kernel: no error")
	}
	e.Close()
	k.fail = nil
	e, rep := start(t, f.config(t), k)
	// The state had the ban before the kernel refused it: Start puts it in.
	if rep.Restored != 1 || !k.has("203.0.113.1") {
		t.Errorf("restart: %+v, kernel %v", rep, k.m)
	}
	if rep := run(t, e); rep.Lines != 1 || rep.Skipped.Known != 1 {
		t.Errorf("the line after the failure: %+v", rep)
	}
}

// TestEngineStartsOnce: a second engine on the same cursor is refused
// while the first runs.
func TestEngineStartsOnce(t *testing.T) {
	f := newFixture(t)
	start(t, f.config(t), newFake(f.now))
	if _, _, err := Start(context.Background(), f.config(t), newFake(f.now)); err == nil {
		t.Fatal("a second engine started on the same cursor")
	}
}

func TestStateRoundTrip(t *testing.T) {
	bans := Bans{
		netip.MustParseAddr("203.0.113.7"):  now.Add(time.Hour),
		netip.MustParseAddr("2001:db8::7"):  {},
		netip.MustParseAddr("198.51.100.1"): now.Add(-time.Second), // ran out: left out
	}
	b := AppendState(nil, bans, now)
	got, err := ParseState(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[netip.MustParseAddr("203.0.113.7")].Equal(now.Add(time.Hour)) || !got[netip.MustParseAddr("2001:db8::7")].IsZero() {
		t.Errorf("round trip: %v\n%s", got, b)
	}
	if !bytes.Equal(AppendState(nil, got, now), b) {
		t.Errorf("written again differs")
	}
}

func TestParseStateDamaged(t *testing.T) {
	h := stateHeader + "\n"
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"no header", "203.0.113.7 100\n"},
		{"other header", "# x\n"},
		{"no newline", h + "203.0.113.7 100"},
		{"no expiry", h + "203.0.113.7\n"},
		{"two spaces", h + "203.0.113.7  100\n"},
		{"not canonical", h + "2001:DB8::7 100\n"},
		{"mapped", h + "::ffff:203.0.113.7 100\n"},
		{"zone", h + "fe80::1%eth0 100\n"},
		{"zero", h + "203.0.113.7 0\n"},
		{"leading zero", h + "203.0.113.7 0100\n"},
		{"sign", h + "203.0.113.7 +100\n"},
		{"too late", h + "203.0.113.7 253402300800\n"},
		{"duplicate", h + "203.0.113.7 100\n203.0.113.7 -\n"},
		{"long line", h + "203.0.113.7 " + strings.Repeat("1", 80) + "\n"},
		{"control", h + "203.0.113.7\t100\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseState(strings.NewReader(c.in)); !errors.Is(err, ErrDamagedState) {
				t.Errorf("ParseState(%q) = %v, want ErrDamagedState", c.in, err)
			}
		})
	}
}

// FuzzParseState: whatever the state file holds reads as damaged, or as
// bans that write back as they were read.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(stateHeader + "\n203.0.113.7 1765090800\n2001:db8::7 -\n"))
	f.Add([]byte(stateHeader + "\n"))
	f.Add([]byte("203.0.113.7 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bans, err := ParseState(bytes.NewReader(b))
		if err != nil {
			return
		}
		out := AppendState(nil, bans, time.Unix(0, 0))
		again, err := ParseState(bytes.NewReader(out))
		if err != nil || len(again) != len(bans) {
			t.Fatalf("written back does not read back: %v\n%q", err, out)
		}
		for a, end := range bans {
			if !again[a].Equal(end) {
				t.Fatalf("%s: %v, read back %v", a, end, again[a])
			}
		}
	})
}

// FuzzDecide: whatever a line of the log holds, a ban comes only from a
// line of the exact shape the receiver writes, of an enabled jail's kind,
// for an address the policy takes and the jail does not ignore.
func FuzzDecide(f *testing.F) {
	f.Add(mustLine(f, logline.Ban, now, "203.0.113.7 jail=sshd"))
	f.Add(mustLine(f, logline.Quorum, now, "2001:db8::7"))
	f.Add(mustLine(f, logline.Unban, now, "203.0.113.7"))
	f.Add(mustLine(f, logline.Ban, now, "192.0.2.7"))
	cfg := Config{Jails: contribJails(f, "192.0.2.0/24")}
	f.Fuzz(func(t *testing.T, line []byte) {
		d := decide(&cfg, line, now)
		if d.Verdict == VerdictNone {
			return
		}
		l, err := logline.Parse(line)
		if err != nil || l.Record.Addr != d.Addr {
			t.Fatalf("%v of %q, which does not parse (%v) or has another address", d.Verdict, line, err)
		}
		if d.Verdict == VerdictBan && (l.Kind == logline.Report || l.Kind == logline.Unban || cfg.Policy.Check(d.Addr) != nil || netip.MustParsePrefix("192.0.2.0/24").Contains(d.Addr)) {
			t.Fatalf("ban of %q", line)
		}
	})
}

// TestEngineLocalLift: 'banpush unban' here (RequestLift) lifts a received
// ban from the kernel and the state at the next run; a lift asked while
// the service is stopped is applied at its start, before anything is
// restored; a later ban of the address is not lifted by the old request.
func TestEngineLocalLift(t *testing.T) {
	f := newFixture(t)
	k := newFake(f.now)
	e, _ := start(t, f.config(t), k)
	f.append(t, mustLine(t, logline.Ban, now, "203.0.113.1"), mustLine(t, logline.Ban, now, "2001:db8::2"), mustLine(t, logline.Ban, now, "203.0.113.3"))
	run(t, e)
	if err := RequestLift(f.state, []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.99")}); err != nil {
		t.Fatal(err)
	}
	if rep := run(t, e); rep.Lifted != 2 || rep.Bans != 2 || k.has("203.0.113.1") {
		t.Errorf("a run after a local lift: %+v, kernel %v", rep, k.m)
	}
	// The request is taken once: a new ban of the address stays.
	f.append(t, mustLine(t, logline.Ban, now, "203.0.113.1"))
	if rep := run(t, e); rep.Added != 1 || !k.has("203.0.113.1") {
		t.Errorf("a new ban after the lift: %+v", rep)
	}
	e.Close()

	// Stopped: the lift waits; the next start applies it before it
	// restores the rest (here, after a reboot).
	if err := RequestLift(f.state, []netip.Addr{netip.MustParseAddr("2001:db8::2")}); err != nil {
		t.Fatal(err)
	}
	k = newFake(f.now)
	_, rep := start(t, f.config(t), k)
	if rep.Restored != 2 || k.has("2001:db8::2") || !k.has("203.0.113.1") || !k.has("203.0.113.3") {
		t.Errorf("start after a lift asked while stopped: %+v, kernel %v", rep, k.m)
	}
	if bans, err := LoadState(StatePath(f.state)); err != nil || len(bans) != 2 {
		t.Errorf("state after the lift: %v, %v", bans, err)
	}
	if _, err := os.Stat(LiftPath(f.state)); !os.IsNotExist(err) {
		t.Errorf("the lift file is still there: %v", err)
	}

	if err := RequestLift(filepath.Join(t.TempDir(), "none", "cursor"), nil); !errors.Is(err, ErrNoFastPath) {
		t.Errorf("RequestLift where the fast path never ran: %v, want ErrNoFastPath", err)
	}
}
