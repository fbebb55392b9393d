package receive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

const filterPath = "../../contrib/fail2ban/filter.d/banpush.conf"

// fail2banRegex runs the real fail2ban-regex on a log with the contrib
// filter and returns its matched and missed line counts.
func fail2banRegex(t *testing.T, log string) (matched, missed int, out []byte) {
	t.Helper()
	testenv.Need(t, testenv.Command("fail2ban-regex", "fail2ban"))
	bin, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "-v", log, filterPath).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in fail2ban-regex output:\n%s", out)
	}
	matched, _ = strconv.Atoi(string(m[3]))
	missed, _ = strconv.Atoi(string(m[4]))
	return matched, missed, out
}

// TestFilterMatchesEveryLine: on a log produced by the receiver, the real
// fail2ban-regex matches exactly the accepted count, whatever the fields,
// address family and time zone.
func TestFilterMatchesEveryLine(t *testing.T) {
	log := filepath.Join(t.TempDir(), "received.log")
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600), time.Local}
	batches := []string{
		"203.0.113.7\n203.0.113.8 jail=sshd\n203.0.113.9 time=1700000000\n203.0.113.10 bantime=600\n",
		"2001:db8::1 jail=nginx-http-auth time=1700000001 bantime=-1\n2001:db8:0:0:1:0:0:1\n::ffff:203.0.113.11\n",
		"198.51.100.1 jail=a.b_c-D time=9999999999 bantime=2147483647\n2001:db8:85a3::8a2e:370:7334 jail=" + strings.Repeat("j", 64) + "\n",
		"127.0.0.1\n10.0.0.1\nnonsense\n203.0.113.7\n",
	}
	instant := time.Date(2026, 11, 24, 12, 34, 56, 0, time.UTC)
	accepted := 0
	for i, b := range batches {
		for _, z := range zones {
			cfg := Config{
				Peer: "peer-" + strconv.Itoa(i), LogPath: log, MaxBurst: 100, MaxPerMinute: 1, LockTimeout: time.Second,
				Now: func() time.Time { return instant.In(z) },
			}
			res, err := Accept(context.Background(), cfg, strings.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			accepted += res.Accepted
		}
	}
	matched, missed, out := fail2banRegex(t, log)
	if matched != accepted || missed != 0 {
		t.Errorf("fail2ban-regex matched %d, missed %d; want %d and 0", matched, missed, accepted)
	}
	// With -v, fail2ban-regex lists each match with the time it parsed, in
	// local time: every zone must have parsed to the same instant.
	want := instant.In(time.Local).Format("Mon Jan 02 15:04:05 2006")
	times := regexp.MustCompile(`(?m)^\|\s+[0-9a-f.:]+\s+(\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4})\s*$`).FindAllSubmatch(out, -1)
	if len(times) != accepted {
		t.Fatalf("found %d parsed times in fail2ban-regex -v output, want %d:\n%s", len(times), accepted, out)
	}
	for _, m := range times {
		if string(m[1]) != want {
			t.Errorf("fail2ban parsed time %s, want %s", m[1], want)
		}
	}
}

// TestFilterMatchesNothingElse: lines that banpush did not write, or that
// were tampered with, do not match.
func TestFilterMatchesNothingElse(t *testing.T) {
	now := time.Now().Format(TimeLayout)
	foreign := []string{
		"banpush: ban 203.0.113.7 peer=web1",                                        // no timestamp
		now + " banpush: ban 203.0.113.7",                                           // no peer
		now + " banpush: ban 203.0.113.7 peer=web1 extra",                           // trailing text
		now + " banpush: ban 203.0.113.7 peer=web1 jail=sshd jail=x",                // field twice
		now + " banpush: unban 203.0.113.7 peer=web1",                               // other tag
		now + " sshd[1]: banpush: ban 203.0.113.7 peer=web1",                        // embedded
		now + " banpush: ban 203.0.113.7 peer=web 1",                                // bad peer
		now + " banpush: ban 203.0.113.7 peer=web1 time=0",                          // bad time
		now + " banpush: ban 203.0.113.7 peer=web1 bantime=-2",                      // bad bantime
		now + " Failed password for root from 203.0.113.7 port 22 ssh2",             // sshd line
		now + " banpush: ban example.com peer=web1",                                 // a name
		now + "  banpush: ban 203.0.113.7 peer=web1",                                // double space
		now + " banpush: ban 203.0.113.7 peer=web1 time=1700000000 jail=sshd",       // order
		now + " banpush: ban 203.0.113.7 peer=" + strings.Repeat("p", 65),           // long peer
		now + " banpush: ban 203.0.113.7 peer=web1 bantime=600 time=1700000000",     // order
		now + " banpush: ban 203.0.113.7 peer=web1 jail=" + strings.Repeat("j", 65), // long jail
	}
	log := filepath.Join(t.TempDir(), "foreign.log")
	if err := os.WriteFile(log, []byte(strings.Join(foreign, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	matched, missed, _ := fail2banRegex(t, log)
	if matched != 0 || missed != len(foreign) {
		t.Errorf("fail2ban-regex matched %d, missed %d; want 0 and %d", matched, missed, len(foreign))
	}
}
