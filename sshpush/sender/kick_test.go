package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the program Kick starts: run with
// helperArg as its first argument, it does one of the jobs below and exits.
const helperArg = "sender-test-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(helperMain(os.Args[2], os.Args[3:]))
	}
	if code, ran := testenv.Sandbox(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// helperMain runs a helper job:
//
//	touch FILE        create FILE, holding this process's id
//	report FILE FD    write this process's id, its session, where its
//	                  stdin, stdout and stderr lead, and whether FD is open
func helperMain(job string, args []string) int {
	var out string
	switch job {
	case "touch":
		out = strconv.Itoa(os.Getpid())
	case "report":
		sid, _ := unix.Getsid(0)
		var stdio []string
		for fd := 0; fd < 3; fd++ {
			l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			stdio = append(stdio, l)
		}
		_, err := os.Readlink("/proc/self/fd/" + args[1])
		out = fmt.Sprintf("%d %d %s %v", os.Getpid(), sid, strings.Join(stdio, ","), err == nil)
	default:
		return 2
	}
	tmp := args[0] + ".tmp"
	if os.WriteFile(tmp, []byte(out), 0o600) != nil || os.Rename(tmp, args[0]) != nil {
		return 1
	}
	return 0
}

// helperCommand is a Command that runs a helper job.
func helperCommand(t *testing.T, job string, args ...string) Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Command{Path: exe, Args: append([]string{helperArg, job}, args...), Environ: os.Environ()}
}

// waitDone waits until the helper that writes file has written it and
// exited, and returns what it wrote.
func waitDone(t *testing.T, file string) string {
	t.Helper()
	var b []byte
	waitFor(t, "the helper's report", func() bool {
		var err error
		b, err = os.ReadFile(file)
		return err == nil
	})
	pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
	waitFor(t, "the helper's exit", func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := strings.LastIndexByte(string(stat), ')')
		return err != nil || i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z")
	})
	return string(b)
}

// TestKickDetaches: the sender Kick starts has a session of its own,
// stdio on /dev/null, no descriptor its parent leaked, and Kick returns
// without waiting for it.
func TestKickDetaches(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc")
	}
	s := newSpool(t)
	// A descriptor a careless parent leaves open across exec.
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	report := filepath.Join(t.TempDir(), "report")
	start := time.Now()
	if err := Kick(s, helperCommand(t, "report", report, strconv.Itoa(p[1]))); err != nil {
		t.Fatal(err)
	}
	t.Logf("Kick returned in %s", time.Since(start))
	f := strings.Fields(waitDone(t, report))
	if len(f) != 4 {
		t.Fatalf("report %q", f)
	}
	if f[0] != f[1] {
		t.Errorf("session %s, want its own (%s)", f[1], f[0])
	}
	if f[2] != "/dev/null,/dev/null,/dev/null" {
		t.Errorf("stdin, stdout, stderr: %s; want /dev/null each", f[2])
	}
	if f[3] != "false" {
		t.Error("the sender inherited a descriptor its parent leaked")
	}
}

// TestKickOnlyWhenFree: with the lock held, Kick starts nothing (a command
// that cannot start shows whether it tried).
func TestKickOnlyWhenFree(t *testing.T) {
	s := newSpool(t)
	missing := Command{Path: filepath.Join(t.TempDir(), "no-such-banpush")}
	l, _, err := TryLock(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := Kick(s, missing); err != nil {
		t.Errorf("with the lock held: %v, want no attempt", err)
	}
	l.Release()
	if err := Kick(s, missing); err == nil {
		t.Error("with the lock free: no error, want the failed start")
	}
}

func TestKeepEnv(t *testing.T) {
	got := keepEnv([]string{"PATH=/bin", "HOME=/root", "SSH_AUTH_SOCK=/a", "LD_PRELOAD=x", "TZ=UTC", "LANG=C", "PATHX=1"})
	want := "PATH=/bin SSH_AUTH_SOCK=/a TZ=UTC LANG=C"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestYield: asking with nobody listening is a no-op; a listener hears it.
func TestYield(t *testing.T) {
	dir := t.TempDir()
	if ok, err := askYield(dir); ok || err != nil {
		t.Errorf("no pipe: got %v, %v", ok, err)
	}
	asked, stop, err := listenYield(dir)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
		t.Fatal("asked before anyone asked")
	default:
	}
	if ok, err := askYield(dir); !ok || err != nil {
		t.Errorf("with a listener: got %v, %v", ok, err)
	}
	<-asked
	stop()
	if ok, err := askYield(dir); ok || err != nil {
		t.Errorf("after the listener stopped: got %v, %v", ok, err)
	}
	// Something else in its place is refused, not written to.
	os.Remove(filepath.Join(dir, yieldName))
	if err := os.WriteFile(filepath.Join(dir, yieldName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := askYield(dir); err == nil {
		t.Error("a regular file in place of the pipe was accepted")
	}
	if _, _, err := listenYield(dir); err == nil {
		t.Error("listening on a regular file was accepted")
	}
}

// TestYieldAfterExit: a sender that lets go between the opening of the
// pipe and the request is not an error: there is nobody left to ask.
func TestYieldAfterExit(t *testing.T) {
	dir := t.TempDir()
	_, stop, err := listenYield(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openFIFO(filepath.Join(dir, yieldName), unix.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop() // the sender exits
	if ok, err := tell(f); ok || err != nil {
		t.Errorf("got %v, %v; want no one asked and no error", ok, err)
	}
}
