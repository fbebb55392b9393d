package firewall

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// contribFailregex reads the failregex of one of contrib's filters.
func contribFailregex(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "fail2ban", "filter.d", name+".conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "failregex = "); ok {
			return v
		}
	}
	t.Fatalf("%s: no failregex", name)
	return ""
}

// contribJails are contrib's receiving jails with their filters, bantime
// 1h and the given ignoreip.
func contribJails(t testing.TB, ignore ...string) []Jail {
	t.Helper()
	var js []Jail
	for _, r := range Receiving {
		re, err := CompileFailregex(contribFailregex(t, r.Jail))
		if err != nil {
			t.Fatalf("%s: %v", r.Jail, err)
		}
		j := Jail{Name: r.Jail, Kind: r.Kind, Filter: []*regexp.Regexp{re}, BanTime: time.Hour}
		for _, s := range ignore {
			j.Ignore = append(j.Ignore, netip.MustParsePrefix(s))
		}
		js = append(js, j)
	}
	return js
}

// TestContribFilters: contrib's filters compile, and each matches every
// line of its kind that the receiver writes (logline), and no line of
// another kind, as the real fail2ban-regex does (logline's filter test).
func TestContribFilters(t *testing.T) {
	js := contribJails(t)
	at := time.Date(2026, 11, 24, 12, 34, 56, 0, time.FixedZone("", 5*3600+1800))
	lines := []string{"203.0.113.7", "2001:db8::7 jail=sshd", "198.51.100.7 jail=nginx time=1700000000 bantime=600", "203.0.113.8 bantime=-1", "203.0.113.9 jail=sshd time=1700000000 failures=1000"}
	for _, j := range js {
		for _, k := range logline.Kinds {
			for _, l := range lines {
				line := mustLine(t, k, at, l)
				p, err := logline.Parse(line)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := j.matches(line, p.Record.Addr), k == j.Kind; got != want {
					t.Errorf("%s on %q: matched %v, want %v", j.Name, line, got, want)
				}
				other := netip.MustParseAddr("192.0.2.99")
				if j.matches(line, other) {
					t.Errorf("%s on %q matched another address", j.Name, line)
				}
			}
		}
	}
}

// mustLine is a line of kind k received at at, of the record text rec.
func mustLine(t testing.TB, k logline.Kind, at time.Time, rec string) []byte {
	t.Helper()
	r, err := record.Parse([]byte(rec))
	if err != nil {
		t.Fatalf("%s: %v", rec, err)
	}
	if k == logline.Fleet && r.Failures == 0 {
		r.Failures = 12
	}
	b := logline.Line{Kind: k, Time: at, Peer: "web1", Record: r, Reports: 2, Hosts: 3}.Append(nil)
	return b[:len(b)-1]
}

func TestCompileFailregex(t *testing.T) {
	for _, c := range []struct {
		name, re string
		ok       bool
	}{
		{"contrib", `^ banpush: ban <ADDR> peer=\S+$`, true},
		{"host", `^ x <HOST>$`, true},
		{"no address", `^ banpush: ban \S+$`, false},
		{"other tag", `^ <F-USER>\S+</F-USER> <ADDR>$`, false},
		{"look-behind", `^(?<=x) <ADDR>$`, false},
		{"back-reference", `^(a)\1 <ADDR>$`, false},
		{"too long", strings.Repeat("a", maxFailregex) + "<ADDR>", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := CompileFailregex(c.re)
			if (err == nil) != c.ok {
				t.Errorf("CompileFailregex(%q) = %v, want ok %v", c.re, err, c.ok)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"600", 600, true},
		{"-1", -1, true},
		{"1h", 3600, true},
		{"10m", 600, true},
		{"1d 12h", 129600, true},
		{"1mo", 30 * 86400, true},
		{"2w", 14 * 86400, true},
		{"1y", 365 * 86400, true},
		{"90minutes", 5400, true},
		{"1h30", 3630, true},
		{"-1h", -3600, true},
		{"", 0, false},
		{"h", 0, false},
		{"1x", 0, false},
		{"99999999999y", 0, false},
		{strings.Repeat("1", 70), 0, false},
	} {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestIgnorePrefixes(t *testing.T) {
	resolve := func(name string) ([]netip.Addr, error) {
		if name == "admin.example" {
			return []netip.Addr{netip.MustParseAddr("192.0.2.5"), netip.MustParseAddr("2001:db8::5")}, nil
		}
		return nil, errors.New("no such host")
	}
	for _, c := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"127.0.0.1/8", []string{"127.0.0.0/8"}, true},
		{"192.0.2.1", []string{"192.0.2.1/32"}, true},
		{"2001:db8::/32", []string{"2001:db8::/32"}, true},
		{"::ffff:192.0.2.1", []string{"192.0.2.1/32"}, true},
		{"admin.example", []string{"192.0.2.5/32", "2001:db8::5/128"}, true},
		{"gone.example", nil, false},
		{"a b", nil, false},
	} {
		got, err := IgnorePrefixes(c.in, resolve)
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if (err == nil) != c.ok || !reflect.DeepEqual(gs, c.want) {
			t.Errorf("IgnorePrefixes(%q) = %v, %v; want %v, ok %v", c.in, gs, err, c.want, c.ok)
		}
	}
}

// dump is what fail2ban-client -d prints of contrib's jails, banpush
// and banpush-quorum enabled (fail2ban 1.0.2, trimmed).
const dump = `['set', 'syslogsocket', 'auto']
['add', 'banpush-quorum', 'polling']
['set', 'banpush-quorum', 'usedns', 'no']
['set', 'banpush-quorum', 'addfailregex', '^ banpush: quorum <ADDR> peer=[A-Za-z0-9._-]{1,64}(?: jail=[A-Za-z0-9._-]{1,64})?(?: time=[1-9][0-9]{0,11})?(?: bantime=(?:-1|[1-9][0-9]{0,9}))? reports=[1-9][0-9]{0,3}$']
['set', 'banpush-quorum', 'maxretry', 1]
['set', 'banpush-quorum', 'bantime', '2h']
['set', 'banpush-quorum', 'addignoreip', '127.0.0.1/8', '192.0.2.0/24', '2001:db8::1']
['set', 'banpush-quorum', 'addaction', 'iptables-allports']
['add', 'banpush', 'polling']
['set', 'banpush', 'addfailregex', '^ banpush: ban <ADDR> peer=[A-Za-z0-9._-]{1,64}(?: jail=[A-Za-z0-9._-]{1,64})?(?: time=[1-9][0-9]{0,11})?(?: bantime=(?:-1|[1-9][0-9]{0,9}))?$']
['set', 'banpush', 'bantime', '-1']
['set', 'banpush', 'addlogpath', '/var/log/banpush/received.log', 'head']
['add', 'sshd', 'polling']
['set', 'sshd', 'bantime', '10m']
['start', 'banpush']
`

func TestFromDump(t *testing.T) {
	ss, err := f2b.ParseSettings([]byte(dump))
	if err != nil {
		t.Fatal(err)
	}
	js, err := FromDump(ss, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 2 || js[0].Name != "banpush" || js[1].Name != "banpush-quorum" {
		t.Fatalf("jails %+v, want banpush and banpush-quorum", js)
	}
	if b := js[0]; b.Kind != logline.Ban || b.BanTime != 0 || len(b.Filter) != 1 || len(b.Ignore) != 0 || !reflect.DeepEqual(b.LogPaths, []string{"/var/log/banpush/received.log"}) {
		t.Errorf("banpush: %+v, want a ban jail with a permanent bantime", b)
	}
	if q := js[1]; q.Kind != logline.Quorum || q.BanTime != 2*time.Hour || len(q.Ignore) != 3 || q.Ignore[0].String() != "127.0.0.0/8" {
		t.Errorf("banpush-quorum: %+v", q)
	}
	bad := strings.Replace(dump, "'2h'", "'2 fortnights'", 1)
	ss, _ = f2b.ParseSettings([]byte(bad))
	if _, err := FromDump(ss, nil); err == nil || !strings.Contains(err.Error(), "banpush-quorum") {
		t.Errorf("FromDump with a bantime it cannot read: %v, want an error naming the jail", err)
	}
}
