package testenv

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

var regexCounts = regexp.MustCompile(`Lines: \d+ lines, \d+ ignored, (\d+) matched, (\d+) missed`)

// Fail2banRegex runs the real fail2ban-regex, verbose, on the log with the
// filter (a filter.d file), and returns how many of the log's lines the
// filter matched and missed, and what fail2ban-regex printed (with -v, each
// match and the time it read from it). It needs fail2ban-regex (Need).
func Fail2banRegex(t testing.TB, log, filter string) (matched, missed int, out []byte) {
	t.Helper()
	Need(t, Command("fail2ban-regex", "fail2ban"))
	prog, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(prog, "-v", log, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex %s %s: %v\n%s", log, filter, err, out)
	}
	m := regexCounts.FindSubmatch(out)
	if m == nil {
		t.Fatalf("fail2ban-regex %s %s: no counts in its output:\n%s", log, filter, out)
	}
	matched, _ = strconv.Atoi(string(m[1]))
	missed, _ = strconv.Atoi(string(m[2]))
	return matched, missed, out
}
