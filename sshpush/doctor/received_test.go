package doctor

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

// TestCheckReceivedLines: doctor says what the received log last
// received, and warns of lines that banpush does not write.
func TestCheckReceivedLines(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	line := func(k logline.Kind, addr, peer string, ago time.Duration) string {
		return string(logline.Line{Kind: k, Time: now.Add(-ago), Peer: peer, Record: record.Record{Addr: netip.MustParseAddr(addr)}, Reports: 2}.Append(nil))
	}
	ban := line(logline.Ban, "203.0.113.7", "web1", time.Hour)
	quorum := line(logline.Quorum, "2001:db8::9", "web2", 90*time.Second)
	long := strings.Repeat(ban, tailLen/len(ban)+10)
	tests := []struct {
		name    string
		content *string // nil: no file
		link    string  // make the log a link to this file
		st      Status
		found   string
	}{
		{name: "no log", st: Skip, found: "no log yet"},
		{name: "empty", content: ptr(""), st: OK, found: "empty"},
		{name: "lines", content: ptr(ban + quorum), st: OK, found: "last line: quorum of 2001:db8::9 from web2, 1m30s ago; 2 lines read from the end, all banpush's"},
		{name: "unfinished line", content: ptr(ban + "2026-12-07T11:59:"), st: OK, found: "last line: ban of 203.0.113.7 from web1, 1h0m0s ago; 1 lines read"},
		{name: "foreign", content: ptr(ban + "Dec  7 11:59:00 host sshd[1]: banpush: ban 203.0.113.8\n" + quorum), st: Warn, found: "1 of the last 3 lines are not lines that banpush writes"},
		{name: "tail only", content: ptr("garbage\n" + long), st: OK, found: "lines read from the end, all banpush's"},
		{name: "link", content: ptr(ban), link: "elsewhere", st: Warn, found: "cannot read it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "received.log")
			if tt.content != nil {
				target := log
				if tt.link != "" {
					target = filepath.Join(dir, tt.link)
					if err := os.Symlink(target, log); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(target, []byte(*tt.content), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			r := CheckReceivedLines(log, now)
			if r.Status != tt.st || !strings.Contains(r.Found, tt.found) {
				t.Errorf("got %s %q, want %s and %q", r.Status, r.Found, tt.st, tt.found)
			}
		})
	}
	t.Run("second name", func(t *testing.T) {
		dir := t.TempDir()
		log := filepath.Join(dir, "received.log")
		if err := os.WriteFile(log, []byte(ban), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(log, filepath.Join(dir, "other")); err != nil {
			t.Fatal(err)
		}
		if r := CheckReceivedLines(log, now); r.Status != Warn || !strings.Contains(r.Found, "hard links") {
			t.Errorf("got %s %q, want a warning of its hard links", r.Status, r.Found)
		}
	})
}

func ptr(s string) *string { return &s }
