package sshdtest

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// authorizedKey makes a key in a new directory and returns its private
// key's path and its authorized_keys line.
func authorizedKey(t *testing.T) (key, line string) {
	t.Helper()
	key, pub, _ := NewKey(t, t.TempDir(), "id", "")
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(b)
}

func TestLaunchDir(t *testing.T) {
	tests := []struct {
		name     string
		dir      func(t *testing.T) string
		wantKept bool
	}{
		{"new temporary directory", func(*testing.T) string { return "" }, false},
		{"given directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "peer") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Require(t)
			key, line := authorizedKey(t)
			dir := tt.dir(t)
			d, err := Launch(Config{AuthorizedKeys: line, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if dir != "" && d.Dir != dir {
				t.Errorf("got Dir %q, want %q", d.Dir, dir)
			}
			args, err := d.SSHArgs(key, "")
			if err != nil {
				t.Fatal(err)
			}
			if out, stderr, err := runSSH(t, append(args, "echo", "hi")...); err != nil || out != "hi\n" {
				t.Fatalf("ssh: got %q, %v, want %q\n%s", out, err, "hi\n", stderr)
			}
			if n, err := d.Connections(); n != 1 || err != nil {
				t.Errorf("got %d connections, %v, want 1", n, err)
			}
			pid := d.Pid()
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if d.Pid() != 0 {
				t.Errorf("got pid %d after Close, want 0", d.Pid())
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("signalling sshd (pid %d) after Close: got %v, want ESRCH", pid, err)
			}
			_, err = os.Stat(filepath.Join(d.Dir, "sshd_config"))
			if kept := err == nil; kept != tt.wantKept {
				t.Errorf("sshd_config kept after Close: got %v (%v), want %v", kept, err, tt.wantKept)
			}
			if err := d.Close(); err != nil {
				t.Errorf("second Close: got %v, want nil", err)
			}
			if err := d.Start(); err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("Start after Close: got %v, want an error that says closed", err)
			}
		})
	}
}

func TestLaunchErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"unknown host key type", Config{HostKeyTypes: []string{"ed25519", "dsa"}}, `unknown host key type "dsa"`},
		{"unknown login user", Config{User: "sshdtest-no-such-user"}, "login user"},
		{"bad sshd_config line", Config{Extra: []string{"NoSuchKeyword yes"}}, "exited before listening"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Require(t)
			dir := filepath.Join(t.TempDir(), "peer")
			tt.cfg.Dir = dir
			d, err := Launch(tt.cfg)
			if err == nil {
				d.Close()
				t.Fatalf("Launch succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "sshdtest: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to start with %q and contain %q", err, "sshdtest: ", tt.wantErr)
			}
		})
	}
}

// TestStopEndsEveryProcess holds a session whose shell has a child, stops
// the server, and checks that every process that was below sshd has exited
// when Stop returns, even those that ignore SIGTERM.
func TestStopEndsEveryProcess(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"shell and child", `sleep 600 & echo ready $$ $!; wait`},
		{"shell and child ignore SIGTERM", `trap '' TERM; sleep 600 & echo ready $$ $!; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, line := authorizedKey(t)
			d := Start(t, Config{AuthorizedKeys: `command="` + tt.script + `" ` + line}).Daemon
			d.grace = 200 * time.Millisecond
			args, err := d.SSHArgs(key, "")
			if err != nil {
				t.Fatal(err)
			}
			held := exec.Command("ssh", args...)
			stdout, err := held.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := held.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { held.Process.Kill(); held.Wait() })
			ready, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("reading the session's first line: %v", err)
			}
			f := strings.Fields(ready)
			if len(f) != 3 || f[0] != "ready" {
				t.Fatalf("got first line %q, want \"ready SHELL-PID CHILD-PID\"", ready)
			}

			// Every process below sshd now, the shell and its child among
			// them.
			ps := ReadProcs()
			below := ps.Descendants(d.Pid())
			for _, s := range f[1:] {
				pid, _ := strconv.Atoi(s)
				if !slices.Contains(below, pid) {
					t.Errorf("pid %d is not below sshd (pid %d): %v", pid, d.Pid(), below)
				}
			}
			var ms []*member
			for _, pid := range append(below, d.Pid()) {
				ms = append(ms, &member{pid: pid, start: ps[pid].Start})
			}
			if err := d.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			for _, m := range ms {
				if !m.gone() {
					p, _ := readProc(m.pid)
					t.Errorf("pid %d still running after Stop (state %c)", m.pid, p.State)
				}
			}
			if err := held.Wait(); err == nil {
				t.Errorf("ssh held across Stop exited 0, want an error")
			}
		})
	}
}

func TestOwnProcessGroup(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run("OwnProcessGroup="+strconv.FormatBool(own), func(t *testing.T) {
			d := Start(t, Config{OwnProcessGroup: own}).Daemon
			pgid, err := syscall.Getpgid(d.Pid())
			if err != nil {
				t.Fatal(err)
			}
			want := syscall.Getpgrp()
			if own {
				want = d.Pid()
			}
			if pgid != want {
				t.Errorf("got process group %d, want %d", pgid, want)
			}
		})
	}
}

// TestOtherLoginUser logs in as nobody, as banpush-bench logs in as its
// own account: sshd reads authorized_keys as that user.
func TestOtherLoginUser(t *testing.T) {
	testenv.Need(t, testenv.Root("sshd logs in as another user"))
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	Require(t)
	key, line := authorizedKey(t)
	// No Dir: the test's temporary directories are closed to nobody, the
	// one Launch makes in /tmp is not.
	d, err := Launch(Config{AuthorizedKeys: line, User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}()
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{{d.Dir, fs.ModeDir | 0o711}, {d.AuthorizedKeysPath(), 0o644}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.want {
			t.Errorf("%s: got mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
	args, err := d.SSHArgs(key, "")
	if err != nil {
		t.Fatal(err)
	}
	// nobody's shell refuses to run anything: the login is what counts.
	runSSH(t, append(args, "true")...)
	if err := d.WaitLog(0, "Accepted publickey for nobody", 10*time.Second); err != nil {
		log, _ := d.Log()
		t.Fatalf("%v\n%s", err, log)
	}
}

func TestDescendants(t *testing.T) {
	cmd := exec.Command("sh", "-c", `sleep 600 & echo $!; wait`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(child, syscall.SIGKILL)
		cmd.Wait()
	})
	ps := ReadProcs()
	self := os.Getpid()
	if got, want := ps.Descendants(cmd.Process.Pid), []int{child}; !slices.Equal(got, want) {
		t.Errorf("got descendants %v of sh, want %v", got, want)
	}
	if got := ps.Descendants(self); !slices.Contains(got, child) || !slices.Contains(got, cmd.Process.Pid) {
		t.Errorf("got descendants %v of the test, want them to hold sh %d and sleep %d", got, cmd.Process.Pid, child)
	}
	if got := ps[child].PPID; got != cmd.Process.Pid {
		t.Errorf("got parent %d of sleep, want sh %d", got, cmd.Process.Pid)
	}
	if p := ps[self]; p.Start == 0 || p.PID != self {
		t.Errorf("got pid %d, start %d for the test itself, want %d and a start time", p.PID, p.Start, self)
	}
}

// TestStopProcs: StopProcs ends the processes its matcher selects, and only
// those, and returns once they are gone.
func TestStopProcs(t *testing.T) {
	marker := "sshdtest-stopprocs-" + strconv.Itoa(os.Getpid())
	start := func() *exec.Cmd {
		// One process, named by the marker: a shell running sleep would
		// fork a second one that bears the marker until it execs.
		cmd := exec.Command("sleep", "60")
		cmd.Args[0] = marker
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait()
		return cmd
	}
	mine, other := start(), exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	match := func(_ int, args []string) bool { return strings.Contains(strings.Join(args, " "), marker) }
	if got := FindProcs(match); len(got) != 1 || got[0] != mine.Process.Pid {
		t.Fatalf("FindProcs = %v, want [%d]", got, mine.Process.Pid)
	}
	if err := StopProcs(match, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := FindProcs(match); len(got) != 0 {
		t.Errorf("still running: %v", got)
	}
	if p, err := readProc(other.Process.Pid); err != nil || p.State == 'Z' {
		t.Errorf("a process the matcher did not select was stopped: %v", err)
	}
}
