package logline

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// filterKind is the kind of line each filter of contrib/fail2ban/filter.d
// bans on. Reports are for people and unbans for apply-unbans: no
// filter's. A new filter must be added here (TestFiltersLineKinds fails
// until it is).
var filterKind = map[string]Kind{"banpush.conf": Ban, "banpush-quorum.conf": Quorum, "banpush-fleet.conf": Fleet}

// filters returns the paths of contrib's filters.
func filters(t *testing.T) []string {
	t.Helper()
	fs, err := filepath.Glob(filepath.Join("..", "..", "contrib", "fail2ban", "filter.d", "*.conf"))
	if err != nil || len(fs) == 0 {
		t.Fatalf("no filters in contrib/fail2ban/filter.d: %v", err)
	}
	return fs
}

// writeLog writes lines, each with its newline, to a new file.
func writeLog(t *testing.T, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFiltersLineKinds: every kind of line, with every optional field, in
// several time zones, is matched by its own filter in contrib and by no
// other, as the real fail2ban-regex reads them; and fail2ban reads from
// each the instant it was written.
func TestFiltersLineKinds(t *testing.T) {
	fs := filters(t)
	if len(fs) != len(filterKind) {
		t.Errorf("contrib has filters %q; filterKind knows %d", fs, len(filterKind))
	}
	at := time.Date(2026, 11, 24, 12, 34, 56, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600), time.Local}
	var recs []record.Record
	for _, l := range []string{"203.0.113.7", "2001:db8::7 jail=sshd", "198.51.100.7 jail=nginx-http-auth time=1700000000 bantime=600", "203.0.113.8 bantime=-1", "203.0.113.9 jail=sshd time=1700000000 failures=1000"} {
		r, err := record.Parse([]byte(l))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		recs = append(recs, r)
	}
	logs := map[Kind]string{}
	n := 0
	for _, k := range Kinds {
		var ls []string
		for i, r := range recs {
			z := zones[i%len(zones)]
			if k == Fleet && r.Failures == 0 {
				r.Failures = 12 // a fleet line always has its count
			}
			ls = append(ls, string(Line{Kind: k, Time: at.In(z), Peer: "web-1.example", Record: r, Reports: 3, Hosts: 3}.Append(nil)))
		}
		logs[k], n = writeLog(t, k.String()+".log", ls), len(ls)
	}
	// With -v, fail2ban-regex lists each match with the time it read, in
	// local time: every zone must read as the same instant.
	when := at.In(time.Local).Format("Mon Jan 02 15:04:05 2006")
	times := regexp.MustCompile(`(?m)^\|\s+[0-9a-f.:]+\s+(\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4})\s*$`)
	for _, f := range fs {
		own, ok := filterKind[filepath.Base(f)]
		if !ok {
			t.Errorf("%s: add it to filterKind", f)
			continue
		}
		for _, k := range Kinds {
			matched, missed, out := testenv.Fail2banRegex(t, logs[k], f)
			want := 0
			if k == own {
				want = n
			}
			if matched != want || matched+missed != n {
				t.Errorf("%s on %s lines: %d matched, %d missed; want %d matched", filepath.Base(f), k, matched, missed, want)
			}
			for _, m := range times.FindAllSubmatch(out, -1) {
				if string(m[1]) != when {
					t.Errorf("%s on %s lines: fail2ban read the time %s, want %s", filepath.Base(f), k, m[1], when)
				}
			}
		}
	}
}

// TestFiltersMatchNothingElse: no filter matches a line that the receiver
// does not write (the lines Parse refuses), nor the lines of a kind it does
// not ban on with a tag or a field changed.
func TestFiltersMatchNothingElse(t *testing.T) {
	var ls []string
	for _, l := range foreign {
		if l != "" {
			ls = append(ls, l+"\n")
		}
	}
	log := writeLog(t, "foreign.log", ls)
	for _, f := range filters(t) {
		matched, missed, out := testenv.Fail2banRegex(t, log, f)
		if matched != 0 || missed != len(ls) {
			t.Errorf("%s: matched %d, missed %d; want 0 and %d\n%s", filepath.Base(f), matched, missed, len(ls), out)
		}
	}
	// The quorum filter's own line, tampered with.
	rec := record.Record{Addr: netip.MustParseAddr("203.0.113.7")}
	good := string(Line{Kind: Quorum, Time: time.Now(), Peer: "p", Record: rec, Reports: 2}.Append(nil))
	bad := []string{
		strings.Replace(good, " reports=2", "", 1),
		strings.Replace(good, " reports=2", " reports=x", 1),
		strings.Replace(good, "banpush: quorum", "banpush: quorums", 1),
	}
	log = writeLog(t, "quorum.log", bad)
	f := filepath.Join("..", "..", "contrib", "fail2ban", "filter.d", "banpush-quorum.conf")
	if matched, _, out := testenv.Fail2banRegex(t, log, f); matched != 0 {
		t.Errorf("banpush-quorum.conf matched %d tampered quorum lines, want 0\n%s", matched, out)
	}
	for _, l := range bad {
		if _, err := Parse([]byte(strings.TrimSuffix(l, "\n"))); err == nil {
			t.Errorf("Parse accepts the tampered %q", l)
		}
	}

	// The fleet filter's own line, tampered with.
	rec.Failures = 12
	good = string(Line{Kind: Fleet, Time: time.Now(), Peer: "p", Record: rec, Hosts: 3}.Append(nil))
	bad = []string{
		strings.Replace(good, " hosts=3", "", 1),
		strings.Replace(good, " failures=12", "", 1),
		strings.Replace(good, " hosts=3", " hosts=0", 1),
		strings.Replace(good, " failures=12", " failures=12 bantime=60", 1),
		strings.Replace(good, "banpush: fleet", "banpush: fleets", 1),
	}
	log = writeLog(t, "fleet.log", bad)
	f = filepath.Join("..", "..", "contrib", "fail2ban", "filter.d", "banpush-fleet.conf")
	if matched, _, out := testenv.Fail2banRegex(t, log, f); matched != 0 {
		t.Errorf("banpush-fleet.conf matched %d tampered fleet lines, want 0\n%s", matched, out)
	}
	for _, l := range bad {
		if _, err := Parse([]byte(strings.TrimSuffix(l, "\n"))); err == nil {
			t.Errorf("Parse accepts the tampered %q", l)
		}
	}
}
