package logline

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

const stamp = "2026-11-30T09:12:01+00:00"

// lines are lines of every kind, with every optional field, as the
// receiver writes them, and what each parses to.
var lines = []struct {
	line string
	want Line
}{
	{stamp + " banpush: ban 203.0.113.7 peer=web1",
		Line{Kind: Ban, Peer: "web1", Record: record.Record{Addr: netip.MustParseAddr("203.0.113.7")}}},
	{stamp + " banpush: ban 2001:db8::7 peer=web-1.example jail=sshd time=1700000000 bantime=-1",
		Line{Kind: Ban, Peer: "web-1.example", Record: record.Record{Addr: netip.MustParseAddr("2001:db8::7"), Jail: "sshd", Time: 1700000000, BanTime: -1}}},
	{"2026-11-30T14:42:01+05:30 banpush: report 198.51.100.7 peer=db_2 bantime=600",
		Line{Kind: Report, Peer: "db_2", Record: record.Record{Addr: netip.MustParseAddr("198.51.100.7"), BanTime: 600}}},
	{"2026-11-30T01:12:01-08:00 banpush: quorum 203.0.113.9 peer=c jail=sshd reports=3",
		Line{Kind: Quorum, Peer: "c", Record: record.Record{Addr: netip.MustParseAddr("203.0.113.9"), Jail: "sshd"}, Reports: 3}},
	{stamp + " banpush: unban 203.0.113.7 peer=web1 jail=nginx-http-auth time=9999999999",
		Line{Kind: Unban, Peer: "web1", Record: record.Record{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "nginx-http-auth", Time: 9999999999}}},
	{stamp + " banpush: fleet 2001:db8::9 peer=h3 jail=sshd time=1765090800 failures=12 hosts=3",
		Line{Kind: Fleet, Peer: "h3", Record: record.Record{Addr: netip.MustParseAddr("2001:db8::9"), Jail: "sshd", Time: 1765090800, Failures: 12}, Hosts: 3}},
}

// TestAppendParse: each line parses to its fields, and the fields write
// back to the same line.
func TestAppendParse(t *testing.T) {
	for _, tt := range lines {
		got, err := Parse([]byte(tt.line))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		if got.Time.Format(TimeLayout) != tt.line[:len(stamp)] {
			t.Errorf("Parse(%q): time %s", tt.line, got.Time.Format(TimeLayout))
		}
		want := tt.want
		want.Time = got.Time
		if got != want {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.line, got, want)
		}
		if back := string(got.Append(nil)); back != tt.line+"\n" {
			t.Errorf("Append: %q, want %q", back, tt.line+"\n")
		}
		if back := string(want.AppendStamped(nil, tt.line[:len(stamp)])); back != tt.line+"\n" {
			t.Errorf("AppendStamped: %q, want %q", back, tt.line+"\n")
		}
	}
}

// TestAppendDropsWhatAKindHasNot: an unban and a fleet line are written
// without a bantime, only a quorum line has reports, and only a fleet line
// has failures and hosts.
func TestAppendDropsWhatAKindHasNot(t *testing.T) {
	rec := record.Record{Addr: netip.MustParseAddr("203.0.113.7"), BanTime: 600, Failures: 12}
	for _, tt := range []struct {
		kind Kind
		want string
	}{
		{Ban, stamp + " banpush: ban 203.0.113.7 peer=p bantime=600\n"},
		{Report, stamp + " banpush: report 203.0.113.7 peer=p bantime=600\n"},
		{Quorum, stamp + " banpush: quorum 203.0.113.7 peer=p bantime=600 reports=2\n"},
		{Unban, stamp + " banpush: unban 203.0.113.7 peer=p\n"},
		{Fleet, stamp + " banpush: fleet 203.0.113.7 peer=p failures=12 hosts=3\n"},
	} {
		l := Line{Kind: tt.kind, Peer: "p", Record: rec, Reports: 2, Hosts: 3}
		if got := string(l.AppendStamped(nil, stamp)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.kind, got, tt.want)
		}
		if _, err := Parse([]byte(strings.TrimSuffix(tt.want, "\n"))); err != nil {
			t.Errorf("%s: its own line: %v", tt.kind, err)
		}
	}
}

// foreign are lines the receiver never writes: Parse refuses each, and no
// filter matches any (TestFiltersMatchNothingElse).
var foreign = []string{
	"banpush: ban 203.0.113.7 peer=web1",                                              // no timestamp
	stamp + " banpush: ban 203.0.113.7",                                               // no peer
	stamp + " banpush: ban 203.0.113.7 peer=web1 extra",                               // trailing text
	stamp + " banpush: ban 203.0.113.7 peer=web1 jail=sshd jail=x",                    // field twice
	stamp + " banpush: ban 203.0.113.7 peer=web1 peer=web2",                           // peer twice
	stamp + " banpush: bans 203.0.113.7 peer=web1",                                    // no such kind
	stamp + " sshd[1]: banpush: ban 203.0.113.7 peer=web1",                            // embedded
	stamp + " banpush: ban 203.0.113.7 peer=web 1",                                    // bad peer
	stamp + " banpush: ban 203.0.113.7 peer=web1 time=0",                              // bad time
	stamp + " banpush: ban 203.0.113.7 peer=web1 bantime=-2",                          // bad bantime
	stamp + " Failed password for root from 203.0.113.7 port 22 ssh2",                 // sshd line
	stamp + " banpush: ban example.com peer=web1",                                     // a name
	stamp + "  banpush: ban 203.0.113.7 peer=web1",                                    // double space
	stamp + " banpush: ban 203.0.113.7 peer=web1 ",                                    // trailing space
	stamp + " banpush: ban 203.0.113.7 peer=web1 time=1700000000 jail=sshd",           // order
	stamp + " banpush: ban 203.0.113.7 peer=" + strings.Repeat("p", 65),               // long peer
	stamp + " banpush: ban 203.0.113.7 peer=web1 bantime=600 time=1700000000",         // order
	stamp + " banpush: ban 203.0.113.7 peer=web1 jail=" + strings.Repeat("j", 65),     // long jail
	stamp + " banpush: ban 203.0.113.7 peer=web1 reports=2",                           // reports on a ban
	stamp + " banpush: ban 203.0.113.7/32 peer=web1",                                  // a prefix
	stamp + " banpush: ban fe80::1%eth0 peer=web1",                                    // a zone
	stamp + " banpush: quorum 203.0.113.7 peer=web1",                                  // no reports
	stamp + " banpush: quorum 203.0.113.7 peer=web1 reports=0",                        // no report
	stamp + " banpush: quorum 203.0.113.7 peer=web1 reports=02",                       // leading zero
	stamp + " banpush: quorum 203.0.113.7 peer=web1 reports=+2",                       // a sign
	stamp + " banpush: unban 203.0.113.7 peer=web1 bantime=600",                       // unban bantime
	stamp + " banpush: ban 203.0.113.7 peer=web1 failures=3",                          // failures on a ban
	stamp + " banpush: fleet 203.0.113.7 peer=web1 hosts=3",                           // no failures
	stamp + " banpush: fleet 203.0.113.7 peer=web1 failures=12",                       // no hosts
	stamp + " banpush: fleet 203.0.113.7 peer=web1 failures=12 hosts=3 reports=2",     // reports on fleet
	stamp + " banpush: fleet 203.0.113.7 peer=web1 failures=1001 hosts=3",             // too many
	stamp + " banpush: fleet 203.0.113.7 peer=web1 bantime=60 failures=12 hosts=3",    // fleet bantime
	stamp + " banpush: ban 203.0.113.7 peer=web1\tjail=sshd",                          // a tab
	stamp + " banpush: ban 203.0.113.7 peer=web1 jail=" + strings.Repeat("j", MaxLen), // too long
	"",
}

// uncanonical are lines of a form the receiver never writes, that
// fail2ban nonetheless reads as the same ban (its <ADDR> and date detector
// are lenient): Parse refuses them, which tells a line banpush wrote from
// one written by another hand; the filters need not.
var uncanonical = []string{
	stamp + " banpush: ban 2001:DB8::7 peer=web1",                  // not canonical
	stamp + " banpush: ban ::ffff:203.0.113.7 peer=web1",           // mapped
	"2026-11-30T09:12:01Z banpush: ban 203.0.113.7 peer=web1",      // other layout
	"2026-11-30T9:12:01+00:00 banpush: ban 203.0.113.7 peer=web1",  // short hour
	"2026-11-31T09:12:01+00:00 banpush: ban 203.0.113.7 peer=web1", // no such day
}

// TestParseRefuses: every line the receiver does not write is ErrBadLine,
// and the error does not repeat the line.
func TestParseRefuses(t *testing.T) {
	for _, l := range append(foreign, uncanonical...) {
		_, err := Parse([]byte(l))
		if !errors.Is(err, ErrBadLine) {
			t.Errorf("Parse(%q): %v, want ErrBadLine", l, err)
		}
		if err != nil && l != "" && strings.Contains(err.Error(), l) {
			t.Errorf("Parse(%q): the error repeats the line", l)
		}
	}
}

// TestKinds: every kind has its own name and tag; an unknown kind says so.
func TestKinds(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds {
		if seen[k.Tag()] || !strings.HasPrefix(k.Tag(), "banpush: ") {
			t.Errorf("%d: tag %q", k, k.Tag())
		}
		seen[k.Tag()] = true
	}
	if got := Kind(0).String(); got != "kind(0)" {
		t.Errorf("Kind(0): %q", got)
	}
}

// TestParseTimeZones: a line keeps the instant and the offset it was
// written with.
func TestParseTimeZones(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 34, 56, 0, time.UTC)
	for _, z := range []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600), time.Local} {
		l := Line{Kind: Ban, Time: at.In(z), Peer: "p", Record: record.Record{Addr: netip.MustParseAddr("203.0.113.7")}}
		b := l.Append(nil)
		got, err := Parse(bytes.TrimSuffix(b, []byte("\n")))
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if !got.Time.Equal(at) {
			t.Errorf("%q: time %s, want %s", b, got.Time, at)
		}
		if _, off := got.Time.Zone(); off != func() int { _, o := at.In(z).Zone(); return o }() {
			t.Errorf("%q: offset %d", b, off)
		}
	}
}

// FuzzParse: Parse never panics, and accepts a line only if it writes the
// line back exactly, as one of the known kinds.
func FuzzParse(f *testing.F) {
	for _, tt := range lines {
		f.Add([]byte(tt.line))
	}
	for _, l := range append(foreign, uncanonical...) {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := Parse(line)
		if err != nil {
			if !errors.Is(err, ErrBadLine) {
				t.Fatalf("error %v, want ErrBadLine", err)
			}
			return
		}
		if l.Kind < Ban || l.Kind > Fleet || (l.Kind == Quorum) != (l.Reports > 0) ||
			(l.Kind == Fleet) != (l.Hosts > 0) || (l.Kind == Fleet) != (l.Record.Failures > 0) {
			t.Fatalf("%q: kind %v, reports %d, hosts %d, failures %d", line, l.Kind, l.Reports, l.Hosts, l.Record.Failures)
		}
		if back := l.Append(nil); !bytes.Equal(back, append(bytes.Clone(line), '\n')) {
			t.Fatalf("%q writes back as %q", line, back)
		}
	})
}
