package receive

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

const filterPath = "../../contrib/fail2ban/filter.d/banpush.conf"

// TestFilterMatchesEveryLine: on a log produced by the receiver, the real
// fail2ban-regex matches exactly the accepted count, whatever the fields,
// address family and time zone. (sshpush/logline's tests prove each kind
// of line against every filter, and lines of no kind against none.)
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
	matched, missed, out := testenv.Fail2banRegex(t, log, filterPath)
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
