package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"github.com/banpush/banpush/sshpush/unbanlog"
)

// TestApplyUnbansFail2ban: apply-unbans against a real fail2ban, through a
// fail2ban-client that records every argument list it is given.
//   - an unban line lifts the ban in the banpush jail and no other ban;
//   - hostile lines (injections, odd address forms, too long, NUL and
//     non-ASCII, a flood of 100,000) reach fail2ban-client never;
//   - a rotation between two writes, with a late write to the rotated
//     file, misses nothing, and nothing is applied twice: an address
//     banned again after its unban stays banned;
//   - with fail2ban stopped, exit 69 and the line is applied once it runs;
//   - --follow applies a new line within its interval and stops on SIGTERM.
func TestApplyUnbansFail2ban(t *testing.T) {
	testenv.Need(t, testenv.Fail2ban()...)
	real, _ := exec.LookPath("fail2ban-client")
	conf := f2bConfDir(t, `[banpush]
logpath = $TMP/received.log
action = dummy[target="$TMP/dummy"]
`)
	tmp := filepath.Dir(conf)
	f2b := f2btest.Start(t, conf, tmp)
	sock := filepath.Join(tmp, "fail2ban.sock")

	// The recording fail2ban-client, first on PATH.
	bin := filepath.Join(tmp, "bin")
	calls := filepath.Join(tmp, "calls")
	os.Mkdir(bin, 0o755)
	if err := os.WriteFile(filepath.Join(bin, "fail2ban-client"), []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" >>"+calls+"\nexec "+real+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	logDir := filepath.Join(tmp, "log")
	os.Mkdir(logDir, 0o755)
	log := filepath.Join(logDir, "received.log")
	state := filepath.Join(tmp, "state", "cursor")
	unban := func(addr string) string {
		return time.Now().Format("2006-01-02T15:04:05-07:00") + " banpush: unban " + addr + " peer=web1 jail=sshd time=1764493921\n"
	}
	banned := func() []string {
		for _, line := range strings.Split(f2b.Client("status", "banpush"), "\n") {
			if _, list, ok := strings.Cut(line, "Banned IP list:"); ok {
				return strings.Fields(list)
			}
		}
		return nil
	}
	ban := func(addrs ...string) {
		t.Helper()
		f2b.Client(append([]string{"set", "banpush", "banip"}, addrs...)...)
		f2b.WaitFor("the bans", func() bool {
			b := banned()
			for _, a := range addrs {
				if !slices.Contains(b, a) {
					return false
				}
			}
			return true
		})
	}
	apply := func(want int) unbanlog.Report {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main([]string{"--fail2ban-socket", sock, "apply-unbans", "--log", log, "--state", state, "--allow-private", "--json"},
			&Env{Stdout: &stdout, Stderr: &stderr, Getenv: os.Getenv, Now: time.Now})
		if code != want {
			t.Fatalf("apply-unbans: exit %d, want %d\n%s", code, want, stderr.String())
		}
		var rep unbanlog.Report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil && want == 0 {
			t.Fatalf("apply-unbans --json: %v\n%s", err, stdout.String())
		}
		return rep
	}
	const x, y, z, w = "203.0.113.7", "198.51.100.8", "10.1.2.3", "2001:db8::9"
	ban(x, y, z, w, "1.2.3.4", "1.2.3.0")

	hostile := []string{
		"1.2.3.4;rm -rf /", "1.2.3.4 peer=x$(id)", "fe80::1%eth0", "1.2.3.0/24", "::ffff:1.2.3.4",
		"1.2.3.4\x00", "1.2.3.4\xc3\xa9", "--all", "-s /tmp/x", "`id`", "1.2.3.4\r",
		strings.Repeat("1", 5000),
	}
	var flood strings.Builder
	for i := range 100000 {
		flood.WriteString(unban(hostile[i%len(hostile)]))
	}
	appendFile(t, log, unban(x)+flood.String())
	start := time.Now()
	rep := apply(0)
	t.Logf("first run, 100,001 lines: %v", time.Since(start))
	if b := banned(); slices.Contains(b, x) || !slices.Contains(b, y) || !slices.Contains(b, "1.2.3.4") || !slices.Contains(b, "1.2.3.0") {
		t.Errorf("after the unban of %s: banned %v", x, b)
	}
	if rep.Unbans < 1 || rep.Lifted != 1 || rep.Calls != 1 {
		t.Errorf("report: %+v", rep)
	}

	// Rotation between two writes, and a late write to the rotated file.
	appendFile(t, log, unban(y))
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, unban(z))
	appendFile(t, log+".1", unban(w))
	rep = apply(0)
	if rep.Start != logtail.StartRotated || rep.Lifted != 3 || rep.Calls != 3 {
		t.Errorf("after the rotation: %+v", rep)
	}
	if b := banned(); slices.ContainsFunc(b, func(a string) bool { return a == y || a == z || a == w }) {
		t.Errorf("after the rotation: banned %v", b)
	}

	// Nothing is applied twice: x banned again stays banned.
	ban(x)
	if rep = apply(0); rep.Calls != 0 {
		t.Errorf("a run with nothing new: %+v", rep)
	}
	if !slices.Contains(banned(), x) {
		t.Errorf("%s, banned again after its unban, was unbanned again", x)
	}

	// An unban line written before x's current ban started does not lift
	// it: that ban is newer than the unban.
	appendFile(t, log, time.Now().Add(-30*time.Second).Format("2006-01-02T15:04:05-07:00")+" banpush: unban "+x+" peer=web1\n")
	if rep = apply(0); rep.Calls != 0 || rep.Skipped.Newer != 1 || !slices.Contains(banned(), x) {
		t.Errorf("an unban older than the ban: %+v, banned %v", rep, banned())
	}

	// fail2ban stopped: exit 69, the line stays ahead of the cursor. Once
	// fail2ban is back, with x's ban restored from its database (x is not
	// banned anew: that ban would be newer than the line, and stay), the
	// line is applied.
	f2b.Stop()
	appendFile(t, log, unban(x))
	apply(exitUnavailable)
	f2b = f2btest.Start(t, conf, tmp)
	f2b.WaitFor(x+"'s ban restored", func() bool { return slices.Contains(banned(), x) })
	if rep = apply(0); rep.Lifted != 1 || slices.Contains(banned(), x) {
		t.Errorf("after fail2ban came back: %+v, banned %v", rep, banned())
	}

	// --follow applies a line as it comes, and stops on SIGTERM.
	ban(x)
	follow := exec.Command(builtBanpush(t), "--fail2ban-socket", sock, "apply-unbans", "--log", log, "--state", state, "--follow", "--interval", "100ms")
	var out bytes.Buffer
	follow.Stdout, follow.Stderr = &out, &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- follow.Wait() }()
	t.Cleanup(func() { follow.Process.Kill() })
	appendFile(t, log, unban(x))
	f2b.WaitFor("--follow to apply the unban", func() bool { return !slices.Contains(banned(), x) })
	follow.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("--follow after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("--follow still runs 10 s after SIGTERM")
	}

	// What apply-unbans gave fail2ban-client (the test's own calls use
	// -c): status, the jail's bans with their start, and the six
	// unbans, nothing else.
	b, _ := os.ReadFile(calls)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		args := strings.Fields(l)
		switch {
		case len(args) > 0 && args[0] == "-c":
		case len(args) == 3 && args[0] == "-s" && args[1] == sock && args[2] == "status":
		case len(args) == 6 && args[0] == "-s" && args[1] == sock && strings.Join(args[2:], " ") == "get banpush banip --with-time":
		case len(args) == 6 && args[0] == "-s" && args[1] == sock && args[2] == "set" && args[3] == "banpush" && args[4] == "unbanip" && slices.Contains([]string{x, y, z, w}, args[5]):
		default:
			t.Errorf("fail2ban-client was run with %q", l)
		}
	}
	if n := strings.Count(string(b), "unbanip"); n != 6 {
		t.Errorf("%d unbans run, want 6:\n%s", n, b)
	}
}

// TestApplyUnbansNoClient: without fail2ban-client on PATH, apply-unbans
// with an unban to apply exits 69 as for a fail2ban that does not answer
// (the README's exit codes), says how to install it, and leaves the
// cursor alone. With nothing to apply, it asks fail2ban nothing.
func TestApplyUnbansNoClient(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", filepath.Join(dir, "empty"))
	log := filepath.Join(dir, "received.log")
	line := logline.Line{Kind: logline.Unban, Time: time.Now(), Peer: "web1", Record: record.Record{Addr: netip.MustParseAddr("203.0.113.7")}}.Append(nil)
	if err := os.WriteFile(log, []byte(line), 0o640); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state", "cursor")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"apply-unbans", "--log", log, "--state", state},
		&Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Now: time.Now})
	if code != exitUnavailable {
		t.Errorf("exit %d, want %d\n%s", code, exitUnavailable, stderr.String())
	}
	if !strings.Contains(stderr.String(), "banpush: hint: apt-get install fail2ban") {
		t.Errorf("no install hint:\n%s", stderr.String())
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("cursor written: %v", err)
	}

	// Nothing to apply (the line is older than --max-age): exit 0.
	stderr.Reset()
	code = Main([]string{"apply-unbans", "--log", log, "--state", state, "--max-age", "1ns"},
		&Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Now: time.Now})
	if code != 0 {
		t.Errorf("nothing to apply: exit %d, want 0\n%s", code, stderr.String())
	}
}
