package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// proc is a process as /proc shows it.
type proc struct {
	pid     int
	args    []string
	environ []string
}

// findProcs lists the live processes, other than this one, that match.
func findProcs(match func(p proc) bool) []int {
	return sshdtest.FindProcs(procMatch(match))
}

// flagIs reports whether args hold flag followed by value.
func flagIs(args []string, flag, value string) bool {
	i := slices.Index(args, flag)
	return i >= 0 && i+1 < len(args) && args[i+1] == value
}

// isSender matches the background senders of a spool.
func isSender(spool string) func(proc) bool {
	return func(p proc) bool {
		return slices.Contains(p.args, "send") && flagIs(p.args, "--spool", spool)
	}
}

// usesSpool matches every process that may write into a spool: its
// senders, and pushes and flushes given it in BANPUSH_SPOOL (which a sender
// they fork keeps until its exec).
func usesSpool(spool string) func(proc) bool {
	sender := isSender(spool)
	return func(p proc) bool {
		return sender(p) || flagIs(p.args, "--spool", spool) || slices.Contains(p.environ, "BANPUSH_SPOOL="+spool)
	}
}

// procMatch adapts a proc matcher to sshdtest's, reading the environment
// only of the processes it looks at.
func procMatch(match func(proc) bool) func(int, []string) bool {
	return func(pid int, args []string) bool {
		return match(proc{pid: pid, args: args, environ: sshdtest.Environ(pid)})
	}
}

// stopSpoolProcs makes every process that may write into spoolDir exit, and
// waits for it: a lingering sender is asked to let go (sender.Yield), and
// whatever still runs after 5 s gets SIGTERM, after 10 s SIGKILL.
func stopSpoolProcs(spoolDir string) error {
	if _, err := os.Stat(spoolDir); err != nil {
		return nil // no spool, no sender
	}
	s, err := spool.Open(spoolDir, spool.Options{})
	if err != nil {
		return err
	}
	return sshdtest.StopProcs(procMatch(usesSpool(spoolDir)), func() { sender.Yield(s) }, 5*time.Second)
}

// usesDir matches every process that may write under dir: one with an
// argument naming a path under it (a sender's --spool, a receiver's --log,
// also inside the -c string of the shell that starts a receiver), or an
// environment variable that does (a push's BANPUSH_SPOOL, which a sender
// it forks keeps until its exec).
func usesDir(dir string) func(proc) bool {
	prefix := dir + "/"
	return func(p proc) bool {
		for _, a := range p.args {
			if strings.Contains(a, prefix) {
				return true
			}
		}
		for _, e := range p.environ {
			if _, v, ok := strings.Cut(e, "="); ok && strings.HasPrefix(v, prefix) {
				return true
			}
		}
		return false
	}
}

// stopProcsAtEnd stops, when the test ends and before its temporary
// directories are removed, every process that may still write under them:
// a sender, a push, or a receiver that outlived the connection it served
// (and so the sshd whose Stop would have waited for it).
func stopProcsAtEnd(t *testing.T) {
	t.Helper()
	root := filepath.Dir(t.TempDir()) // every TempDir of the test is in it
	t.Cleanup(func() {
		match := usesDir(root)
		for _, pid := range findProcs(match) {
			t.Logf("still running under %s at the end: pid %d: %.200s", root, pid, strings.Join(sshdtest.Cmdline(pid), " "))
		}
		if err := sshdtest.StopProcs(procMatch(match), nil, 0); err != nil {
			t.Errorf("stopping what runs under %s: %v", root, err)
		}
	})
}

// TestFindProcs: the matching that stopSpoolProcs and killSender rely on.
func TestFindProcs(t *testing.T) {
	tests := []struct {
		name string
		p    proc
		want bool
	}{
		{"sender", proc{args: []string{"/bin/banpush", "--inventory", "/i", "--spool", "/s", "send", "--max-age", "24h0m0s"}}, true},
		{"other spool", proc{args: []string{"/bin/banpush", "--spool", "/s2", "send"}}, false},
		{"spool as a value of another flag", proc{args: []string{"/bin/banpush", "--inventory", "/s", "send"}}, false},
		{"push by environment", proc{args: []string{"/bin/banpush", "push", "203.0.113.1"}, environ: []string{"BANPUSH_SPOOL=/s"}}, true},
		{"push of another spool", proc{args: []string{"/bin/banpush", "push"}, environ: []string{"BANPUSH_SPOOL=/s2"}}, false},
	}
	for _, tt := range tests {
		if got := usesSpool("/s")(tt.p); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if !isSender("/s")(tests[0].p) || isSender("/s")(tests[3].p) {
		t.Error("isSender: wrong")
	}
	if errors.Is(stopSpoolProcs(t.TempDir()+"/none"), os.ErrNotExist) {
		t.Error("a missing spool is an error")
	}
	in := usesDir("/tmp/TestX1")
	for _, tt := range []struct {
		p    proc
		want bool
	}{
		{proc{args: []string{"/bin/sh", "-c", "/bin/banpush receive --peer a --log /tmp/TestX1/001/peer1.log"}}, true},
		{proc{args: []string{"/bin/banpush", "--spool", "/tmp/TestX1/001/spool", "send"}}, true},
		{proc{args: []string{"/bin/banpush", "push"}, environ: []string{"BANPUSH_SPOOL=/tmp/TestX1/001/spool"}}, true},
		{proc{args: []string{"/bin/banpush", "--spool", "/tmp/TestX12/001/spool", "send"}}, false},
		{proc{args: []string{"sshd: root@notty"}}, false},
	} {
		if got := in(tt.p); got != tt.want {
			t.Errorf("usesDir(%+v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}
