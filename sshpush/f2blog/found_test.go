package f2blog

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// realLog is what a private fail2ban 1.0.2 (Debian 12) logged at INFO: a
// jail "test" (maxretry 3) given failures of IPv4 and IPv6 addresses, one
// of them IPv4-mapped, more than maxretry for one (banned, then two more
// failures after the ban: 3 s and 7 s later), an address in ignoreip, a
// ban and an unban by hand, a restart (Restore Ban), a reload adding the
// jails "web-1.x@y:auth" (a link-local address among its failures) and
// "id", whose filter captures an <F-ID> of any text.
const realLog = "testdata/fail2ban-1.0.2.log"

// local is a time of the failures in realLog, in the local time zone.
func local(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

// TestParseFoundRealLog: of fail2ban's own lines, exactly its Found lines
// of addresses are failures, each with its jail, address and time.
func TestParseFoundRealLog(t *testing.T) {
	f, err := os.Open(realLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Failure
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl, ok := ParseFound(sc.Bytes()); ok {
			got = append(got, fl)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	first, after1, after2, web := local("2026-12-07 07:06:54"), local("2026-12-07 07:06:57"), local("2026-12-07 07:07:01"), local("2026-12-07 07:07:41")
	want := []Failure{
		{"test", netip.MustParseAddr("203.0.113.7"), first},
		{"test", netip.MustParseAddr("203.0.113.7"), first},
		{"test", netip.MustParseAddr("2001:db8::7"), first},
		{"test", netip.MustParseAddr("203.0.113.7"), first},
		{"test", netip.MustParseAddr("203.0.113.7"), first},
		{"test", netip.MustParseAddr("203.0.113.7"), first},
		{"test", netip.MustParseAddr("198.51.100.9"), first}, // written ::ffff:198.51.100.9
		{"test", netip.MustParseAddr("2001:db8::8"), first},  // written 2001:DB8:0:0::8
		{"test", netip.MustParseAddr("192.0.2.1"), first},
		{"test", netip.MustParseAddr("203.0.113.7"), after1}, // banned already
		{"test", netip.MustParseAddr("203.0.113.7"), after2},
		{"web-1.x@y:auth", netip.MustParseAddr("2001:db8::1:0:0:1"), web},
		{"web-1.x@y:auth", netip.MustParseAddr("fe80::1"), web},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d failures, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Jail != want[i].Jail || got[i].Addr != want[i].Addr || !got[i].Time.Equal(want[i].Time) {
			t.Errorf("failure %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestParseFound(t *testing.T) {
	const (
		stamp = "2026-12-07 07:00:00,123 "
		pre   = stamp + "fail2ban.filter         [1234]: INFO    "
		tail  = " - 2026-12-07 07:00:00"
	)
	tests := []struct {
		name string
		line string
		jail string // "" for a line that is not a failure
		addr string
	}{
		{name: "IPv4", line: pre + "[sshd] Found 203.0.113.7" + tail, jail: "sshd", addr: "203.0.113.7"},
		{name: "IPv6", line: pre + "[sshd] Found 2001:db8::7" + tail, jail: "sshd", addr: "2001:db8::7"},
		{name: "long pid", line: stamp + "fail2ban.filter         [4194304]: INFO    [sshd] Found 203.0.113.7" + tail, jail: "sshd", addr: "203.0.113.7"},
		{name: "jail of every allowed character", line: pre + "[a.B_9@x:y-z] Found 203.0.113.7" + tail, jail: "a.B_9@x:y-z", addr: "203.0.113.7"},
		{name: "jail of 100 characters", line: pre + "[" + strings.Repeat("j", 100) + "] Found 203.0.113.7" + tail, jail: strings.Repeat("j", 100), addr: "203.0.113.7"},

		// fail2ban's other lines about an address.
		{name: "Ban", line: stamp + "fail2ban.actions        [1234]: NOTICE  [sshd] Ban 203.0.113.7"},
		{name: "Restore Ban", line: stamp + "fail2ban.actions        [1234]: NOTICE  [sshd] Restore Ban 203.0.113.7"},
		{name: "already banned", line: stamp + "fail2ban.actions        [1234]: NOTICE  [sshd] 203.0.113.7 already banned"},
		{name: "Unban", line: stamp + "fail2ban.actions        [1234]: NOTICE  [sshd] Unban 203.0.113.7"},
		{name: "Ignore by ip", line: pre + "[sshd] Ignore 203.0.113.7 by ip"},
		{name: "Ignore by command", line: pre + "[sshd] Ignore 203.0.113.7 by command"},
		{name: "no valid date", line: stamp + "fail2ban.filter         [1234]: ERROR   Found a match but no valid date/time found for '203.0.113.7'. Please try setting a custom date pattern"},

		// Not exactly fail2ban's form.
		{name: "empty", line: ""},
		{name: "no stamp", line: "fail2ban.filter         [1234]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "stamp without milliseconds", line: "2026-12-07 07:00:00 fail2ban.filter         [1234]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "month 13", line: "2026-13-07 07:00:00,123 fail2ban.filter         [1234]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "failure at hour 25", line: pre + "[sshd] Found 203.0.113.7 - 2026-12-07 25:00:00"},
		{name: "failure time short", line: pre + "[sshd] Found 203.0.113.7 - 2026-12-07 7:00:00"},
		{name: "failure time with zone", line: pre + "[sshd] Found 203.0.113.7 - 2026-12-07 07:00:00+01:00"},
		{name: "no padding (padding=0)", line: stamp + "fail2ban.filter[1234]: INFO [sshd] Found 203.0.113.7" + tail},
		{name: "other logger", line: stamp + "fail2ban.filterx        [1234]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "WARNING", line: stamp + "fail2ban.filter         [1234]: WARNING [sshd] Found 203.0.113.7" + tail},
		{name: "DEBUG", line: stamp + "fail2ban.filter         [1234]: DEBUG   [sshd] Found 203.0.113.7" + tail},
		{name: "pid with leading zero", line: stamp + "fail2ban.filter         [01234]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "pid of 11 digits", line: stamp + "fail2ban.filter         [12345678901]: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "no pid", line: stamp + "fail2ban.filter         []: INFO    [sshd] Found 203.0.113.7" + tail},
		{name: "empty jail", line: pre + "[] Found 203.0.113.7" + tail},
		{name: "jail with a space", line: pre + "[ss hd] Found 203.0.113.7" + tail},
		{name: "jail with a shell character", line: pre + "[$(x)] Found 203.0.113.7" + tail},
		{name: "jail of 101 characters", line: pre + "[" + strings.Repeat("j", 101) + "] Found 203.0.113.7" + tail},
		{name: "F-ID text", line: pre + "[id] Found alice - bob [x] Found 1.2.3.4" + tail},
		{name: "F-ID ending like an address", line: pre + "[id] Found x 1.2.3.4" + tail},
		{name: "CIDR", line: pre + "[sshd] Found 10.0.0.0/8" + tail},
		{name: "hostname", line: pre + "[sshd] Found example.com" + tail},
		{name: "zone", line: pre + "[sshd] Found fe80::1%eth0" + tail},
		{name: "mapped", line: pre + "[sshd] Found ::ffff:203.0.113.7" + tail},
		{name: "IPv6 upper case", line: pre + "[sshd] Found 2001:DB8::7" + tail},
		{name: "IPv6 not compressed", line: pre + "[sshd] Found 2001:db8:0:0:0:0:0:7" + tail},
		{name: "leading zeros", line: pre + "[sshd] Found 203.0.113.07" + tail},
		{name: "no address", line: pre + "[sshd] Found " + tail},
		{name: "two spaces", line: pre + "[sshd] Found  203.0.113.7" + tail},
		{name: "trailing space", line: pre + "[sshd] Found 203.0.113.7" + tail + " "},
		{name: "CR", line: pre + "[sshd] Found 203.0.113.7" + tail + "\r"},
		{name: "tab", line: pre + "[sshd] Found\t203.0.113.7" + tail},
		{name: "NUL", line: pre + "[sshd] Found 203.0.113.7\x00" + tail},
		{name: "non-ASCII", line: pre + "[sshd] Found 203.0.113.7" + tail + "\u00e9"},
		{name: "terminal escape", line: pre + "[sshd] Found 203.0.113.7\x1b[2J" + tail},
		{name: "over the bound", line: pre + "[sshd] Found 203.0.113.7" + tail + strings.Repeat(" ", MaxLine)},
		{name: "cut short", line: pre + "[sshd] Found 203.0.113.7 - 2026-12-07"},
		{name: "twice", line: pre + "[sshd] Found 203.0.113.7" + tail + " " + pre + "[sshd] Found 203.0.113.8" + tail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseFound([]byte(tt.line))
			if ok != (tt.jail != "") {
				t.Fatalf("got %v, %v; want a failure: %v", got, ok, tt.jail != "")
			}
			if !ok {
				return
			}
			if got.Jail != tt.jail || got.Addr.String() != tt.addr || !got.Time.Equal(local("2026-12-07 07:00:00")) {
				t.Errorf("got %v, want [%s] %s at 2026-12-07 07:00:00 local", got, tt.jail, tt.addr)
			}
		})
	}
}

// FuzzParseFound: ParseFound never panics, never accepts a line over the
// bound or outside printable ASCII, and what it accepts is a Found line
// that fail2ban's form writes back byte for byte: nothing of an accepted
// line escapes the grammar.
func FuzzParseFound(f *testing.F) {
	if b, err := os.ReadFile(realLog); err == nil {
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Add([]byte("2026-12-07 07:00:00,123 fail2ban.filter         [1234]: INFO    [sshd] Found ::ffff:1.2.3.4 - 2026-12-07 07:00:00"))
	f.Add([]byte("2026-12-07 07:00:00,123 fail2ban.filter         [1234]: INFO    [sshd] Found fe80::1%eth0 - 2026-12-07 07:00:00"))
	f.Fuzz(func(t *testing.T, line []byte) {
		fl, ok := ParseFound(line)
		if !ok {
			return
		}
		if len(line) > MaxLine || !printable(line) {
			t.Fatalf("accepted %q", line)
		}
		if !fl.Addr.IsValid() || fl.Addr.Zone() != "" || fl.Addr.Is4In6() {
			t.Fatalf("accepted address %v", fl.Addr)
		}
		// The stamp and the process id are not kept: put them back.
		i := bytes.Index(line, []byte("]: INFO    ["))
		want := string(line[:i]) + "]: INFO    [" + fl.Jail + "] Found " + fl.Addr.String() + " - " + fl.Time.Format(time.DateTime)
		if string(line) != want {
			t.Fatalf("round trip: got %q from %q", want, line)
		}
	})
}

// BenchmarkParseFound: lines of fail2ban's log read a second, a Found
// line and another.
func BenchmarkParseFound(b *testing.B) {
	for _, bm := range []struct{ name, line string }{
		{"found", "2026-12-07 07:06:54,585 fail2ban.filter         [32247]: INFO    [sshd] Found 203.0.113.7 - 2026-12-07 07:06:54"},
		{"found-ipv6", "2026-12-07 07:06:54,586 fail2ban.filter         [32247]: INFO    [sshd] Found 2001:db8::7 - 2026-12-07 07:06:54"},
		{"ban", "2026-12-07 07:06:54,773 fail2ban.actions        [32247]: NOTICE  [sshd] Ban 203.0.113.7"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			line := []byte(bm.line)
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				ParseFound(line)
			}
		})
	}
}
