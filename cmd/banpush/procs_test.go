package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/sshdtest"
)

// proc is a process as /proc shows it.
type proc struct {
	pid     int
	args    []string
	environ []string
}

// findProcs lists the live processes, other than this one, that match.
func findProcs(match func(p proc) bool) []int {
	return sshdtest.FindProcs(func(pid int, args []string) bool {
		return match(proc{pid: pid, args: args, environ: sshdtest.Environ(pid)})
	})
}

// flagIs reports whether args hold flag followed by value.
func flagIs(args []string, flag, value string) bool {
	i := slices.Index(args, flag)
	return i >= 0 && i+1 < len(args) && args[i+1] == value
}

// isSender matches the background senders of a spool.
func isSender(spool string) func(proc) bool {
	return func(p proc) bool {
		return len(p.args) > 0 && p.args[len(p.args)-1] == "send" && flagIs(p.args, "--spool", spool)
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

// signalProcs sends sig to each process that still matches, and returns
// how many it signalled.
func signalProcs(pids []int, match func(proc) bool, sig syscall.Signal) int {
	n := 0
	for _, pid := range pids {
		still := func() bool {
			return slices.Contains(findProcs(func(p proc) bool { return p.pid == pid && match(p) }), pid)
		}
		if signalIf(pid, still, sig) {
			n++
		}
	}
	return n
}

// stopSpoolProcs makes every process that may write into spoolDir exit, and
// waits for it: a lingering sender is asked to let go (sender.Yield), and
// whatever still runs after 5 s gets SIGTERM, after 10 s SIGKILL. Tests
// call it before their temporary directories are removed.
func stopSpoolProcs(spoolDir string) error {
	if _, err := os.Stat(spoolDir); err != nil {
		return nil // no spool, no sender
	}
	match := usesSpool(spoolDir)
	s, err := spool.Open(spoolDir, spool.Options{})
	if err != nil {
		return err
	}
	start := time.Now()
	for quiet := 0; quiet < 2; {
		pids := findProcs(match)
		if len(pids) == 0 {
			quiet++ // twice in a row: nothing was between two states
			time.Sleep(5 * time.Millisecond)
			continue
		}
		quiet = 0
		sender.Yield(s)
		switch waited := time.Since(start); {
		case waited > 15*time.Second:
			return fmt.Errorf("processes of %s still running after 15 s: %v", spoolDir, pids)
		case waited > 10*time.Second:
			signalProcs(pids, match, syscall.SIGKILL)
		case waited > 5*time.Second:
			signalProcs(pids, match, syscall.SIGTERM)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// TestFindProcs: the matching that stopSpoolProcs and killSender rely on.
func TestFindProcs(t *testing.T) {
	tests := []struct {
		name string
		p    proc
		want bool
	}{
		{"sender", proc{args: []string{"/bin/banpush", "--inventory", "/i", "--spool", "/s", "--max-age", "24h0m0s", "send"}}, true},
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
}
