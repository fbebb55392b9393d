package f2b

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// banList is what fail2ban 1.0.2 answers to 'get JAIL banip --with-time'
// (TZ=UTC): a permanent ban, an IPv6 one and a plain one.
const banList = "203.0.113.6 \t2026-11-30 09:00:11 + -1 = 9999-12-31 23:59:59\n" +
	"2001:db8::1 \t2026-11-30 09:00:11 + 3600 = 2026-11-30 10:00:11\n" +
	"203.0.113.7 \t2026-11-30 09:00:45 + 600 = 2026-11-30 09:10:45\n"

func TestParseBans(t *testing.T) {
	const t0 = 1796029211 // 2026-11-30 09:00:11 UTC
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	tests := []struct {
		name    string
		out     string
		loc     *time.Location
		want    []Ban
		skipped int
		err     string
	}{
		{name: "fail2ban's answer", out: banList, want: []Ban{
			{Addr: netip.MustParseAddr("203.0.113.6"), Jail: "sshd", Time: t0, BanTime: Permanent},
			{Addr: netip.MustParseAddr("2001:db8::1"), Jail: "sshd", Time: t0, BanTime: 3600},
			{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0 + 34, BanTime: 600},
		}},
		{name: "no bans", out: "\n", want: nil},
		{name: "empty", out: "", want: nil},
		{name: "no newline at the end", out: "203.0.113.7 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0, BanTime: 60}}},
		{name: "other negative bantime is permanent", out: "203.0.113.7 \t2026-11-30 09:00:11 + -5 = 9999-12-31 23:59:59\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0, BanTime: Permanent}}},
		{name: "mapped address unmapped", out: "::ffff:203.0.113.7 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0, BanTime: 60}}},
		{name: "local time zone", loc: ny, out: "203.0.113.7 \t2026-11-30 04:00:11 + 60 = 2026-11-30 04:01:11\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0, BanTime: 60}}},
		// 2026-11-01 01:30 happens twice in New York: at 05:30 UTC (EDT)
		// and at 06:30 UTC (EST). The end says which.
		{name: "repeated hour, first", loc: ny, out: "203.0.113.7 \t2026-11-01 01:30:00 + 3600 = 2026-11-01 01:30:00\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: 1793511000, BanTime: 3600}}},
		{name: "repeated hour, second", loc: ny, out: "203.0.113.7 \t2026-11-01 01:30:00 + 3600 = 2026-11-01 02:30:00\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: 1793514600, BanTime: 3600}}},
		{name: "repeated hour, permanent: the earlier", loc: ny, out: "203.0.113.7 \t2026-11-01 01:30:00 + -1 = 9999-12-31 23:59:59\n",
			want: []Ban{{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: 1793511000, BanTime: Permanent}}},
		{name: "skipped hour", loc: ny, out: "203.0.113.7 \t2026-03-08 02:30:00 + 60 = 2026-03-08 03:31:00\n", err: "line 1: start of ban is not a time of the local time zone"},
		{name: "an ID that is not an address", out: "user@example \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n" + banList,
			skipped: 1, want: []Ban{
				{Addr: netip.MustParseAddr("203.0.113.6"), Jail: "sshd", Time: t0, BanTime: Permanent},
				{Addr: netip.MustParseAddr("2001:db8::1"), Jail: "sshd", Time: t0, BanTime: 3600},
				{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: t0 + 34, BanTime: 600},
			}},
		{name: "an ID with a zone", out: "fe80::1%eth0 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n", skipped: 1},
		{name: "an ID with separators", out: "203.0.113.9 \t1999-01-01 00:00:00 + 1 = x \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n", skipped: 1},
		{name: "plain list, no times", out: "203.0.113.6 203.0.113.7\n", err: "line 1: no ' \\t' after the banned ID"},
		{name: "bad bantime", out: "203.0.113.7 \t2026-11-30 09:00:11 + 1.5 = 2026-11-30 09:01:11\n", err: "line 1: bantime is not an integer"},
		{name: "bad start", out: "203.0.113.7 \t2026-11-30T09:00:11 + 60 = 2026-11-30 09:01:11\n", err: "line 1: start of ban is not a time"},
		{name: "bad end", out: "203.0.113.7 \t2026-11-30 09:00:11 + 60 = soon\n", err: "line 1: end of ban is not a time"},
		{name: "before 1970", out: "203.0.113.7 \t1969-12-31 23:59:59 + 60 = 1970-01-01 00:00:59\n", err: "line 1: start of ban out of range"},
		{name: "missing parts", out: "\n\n203.0.113.7 \t2026-11-30 09:00:11 + 60\n", err: "line 3: not 'START + BANTIME = END'"},
		{name: "carriage return", out: "203.0.113.7 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\r\n", err: "line 1: end of ban is not a time"},
		{name: "long line", out: strings.Repeat("x", 600) + " \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n", err: "line 1: line too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := tt.loc
			if loc == nil {
				loc = time.UTC
			}
			got, skipped, err := ParseBans([]byte(tt.out), "sshd", loc)
			if tt.err != "" {
				if err == nil || !strings.HasSuffix(err.Error(), tt.err) {
					t.Fatalf("error %v, want one ending %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || skipped != tt.skipped {
				t.Errorf("got %+v, %d skipped; want %+v, %d skipped", got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

func TestParseBansLimit(t *testing.T) {
	line := "203.0.113.7 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n"
	if _, _, err := ParseBans([]byte(strings.Repeat(line, maxBans)), "sshd", time.UTC); err != nil {
		t.Fatalf("%d bans: %v", maxBans, err)
	}
	if _, _, err := ParseBans([]byte(strings.Repeat(line, maxBans+1)), "sshd", time.UTC); err != ErrTooManyBans {
		t.Fatalf("%d bans: got %v, want ErrTooManyBans", maxBans+1, err)
	}
}

func TestBanEnd(t *testing.T) {
	if end, ok := (Ban{Time: 100, BanTime: 50}).End(); end != 150 || !ok {
		t.Errorf("got %d, %v; want 150, true", end, ok)
	}
	if _, ok := (Ban{Time: 100, BanTime: Permanent}).End(); ok {
		t.Errorf("a permanent ban ends")
	}
}

// FuzzParseBans: the ban list parser never panics and returns only valid,
// unmapped addresses without zones, times in range and bantimes that are
// Permanent or not negative.
func FuzzParseBans(f *testing.F) {
	f.Add([]byte(banList))
	f.Add([]byte("user \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11\n\n"))
	f.Add([]byte("203.0.113.7 \t2026-11-01 01:30:00 + 3600 = 2026-11-01 01:30:00"))
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.UTC
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, loc := range []*time.Location{time.UTC, ny} {
			bans, _, err := ParseBans(data, "sshd", loc)
			if err != nil {
				continue
			}
			for _, b := range bans {
				if !b.Addr.IsValid() || b.Addr.Zone() != "" || b.Addr.Is4In6() {
					t.Fatalf("bad address %v", b.Addr)
				}
				if b.Time < 1 || b.Time > 253402300799 || b.BanTime < Permanent {
					t.Fatalf("out of range: %+v", b)
				}
			}
		}
	})
}

func TestActive(t *testing.T) {
	a, b, c := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("2001:db8::3")
	const now = 1000
	bans := []Ban{
		{Addr: c, Jail: "sshd", Time: 900, BanTime: 600},
		{Addr: b, Jail: "sshd", Time: 100, BanTime: 600},      // ended at 700
		{Addr: a, Jail: "sshd", Time: 900, BanTime: 600},      // ends at 1500
		{Addr: a, Jail: "recidive", Time: 500, BanTime: 7200}, // ends later: wins
		{Addr: a, Jail: "nginx", Time: 950, BanTime: 600},
		{Addr: c, Jail: "recidive", Time: 100, BanTime: Permanent}, // permanent: wins
		{Addr: c, Jail: "nginx", Time: 990, BanTime: 100000},
		{Addr: b, Jail: "nginx", Time: 400, BanTime: 600}, // ends at now: ended
	}
	got, expired, dups := Active(bans, now)
	want := []Ban{
		{Addr: a, Jail: "recidive", Time: 500, BanTime: 7200},
		{Addr: c, Jail: "recidive", Time: 100, BanTime: Permanent},
	}
	if !reflect.DeepEqual(got, want) || expired != 2 || dups != 4 {
		t.Errorf("got %+v, %d expired, %d dups; want %+v, 2 expired, 4 dups", got, expired, dups, want)
	}
}
