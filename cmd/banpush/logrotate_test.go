package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// fail2ban is a private fail2ban server for one test.
type fail2ban struct {
	t    *testing.T
	conf string
	done chan struct{} // closed when the server has exited
}

// startFail2ban runs fail2ban-server in the foreground on conf (see
// f2bConfDir), with its socket, pid file, database and log in dir, until
// the test ends.
func startFail2ban(t *testing.T, conf, dir string) *fail2ban {
	t.Helper()
	writeTestFile(t, filepath.Join(conf, "fail2ban.local"), "[Definition]\n"+
		"logtarget = "+filepath.Join(dir, "fail2ban.log")+"\n"+
		"socket = "+filepath.Join(dir, "fail2ban.sock")+"\n"+
		"pidfile = "+filepath.Join(dir, "fail2ban.pid")+"\n"+
		"dbfile = "+filepath.Join(dir, "fail2ban.sqlite3")+"\n")
	cmd := exec.Command("fail2ban-server", "-f", "-x", "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	f := &fail2ban{t: t, conf: conf, done: done}
	t.Cleanup(func() {
		f.stop()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "fail2ban.log"))
			t.Logf("fail2ban log:\n%s", b)
		}
	})
	f.waitFor("the server to answer", func() bool { return strings.Contains(f.client("ping"), "pong") })
	return f
}

// stop asks the server to stop and waits (up to 20 s) until it has.
func (f *fail2ban) stop() {
	exec.Command("fail2ban-client", "-c", f.conf, "stop").Run()
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
	}
}

// client runs fail2ban-client with args and returns its output.
func (f *fail2ban) client(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "fail2ban-client", append([]string{"-c", f.conf}, args...)...).CombinedOutput()
	return string(out)
}

func (f *fail2ban) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("fail2ban: %s: not within 30 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLogrotate: the contrib logrotate file, run by the real logrotate on
// a host that setup-receiver.sh set up (in a private root): its prerotate
// closes the log's directory and lifts the append-only attribute, logrotate
// renames the log, its postrotate makes a new append-only log of the
// account's and gives the rotated one to root; the receiver, run as the
// account, and a real fail2ban watching the log keep working across the
// rotation.
func TestLogrotate(t *testing.T) {
	testenv.Need(t, append(testenv.Fail2ban(),
		testenv.Root("rotates as root a log of another account's"),
		testenv.Command("logrotate", "logrotate"),
		testenv.Command("setpriv", "util-linux"),
		testenv.Command("useradd", "passwd"))...)
	privateRoot(t)
	installBinary(t, "/usr/local/bin/banpush")
	mustRun(t, "sh", filepath.Join(contribDir, "sshd", "setup-receiver.sh"))
	mustRun(t, "install", "-D", "-m", "0644", filepath.Join(contribDir, "logrotate.d", "banpush"), "/etc/logrotate.d/banpush")
	const log = "/var/log/banpush/received.log"
	uid, gid := accountIDs(t, "banpush")
	conf := f2bConfDir(t, "[banpush]\nlogpath = "+log+"\naction = dummy[target=\"$TMP/dummy\"]\n")
	f2b := startFail2ban(t, conf, filepath.Dir(conf))
	banned := func(addr string) func() bool {
		return func() bool { return strings.Contains(f2b.client("status", "banpush"), addr) }
	}

	receiveAs(t, "banpush", log, "203.0.113.201")
	f2b.waitFor("the ban before the rotation", banned("203.0.113.201"))

	out := mustRun(t, "logrotate", "-f", "-v", "-s", filepath.Join(t.TempDir(), "logrotate.state"), "/etc/logrotate.d/banpush")
	t.Logf("logrotate:\n%s", out)
	if b, err := os.ReadFile(log + ".1"); err != nil || !strings.Contains(string(b), "203.0.113.201") {
		t.Fatalf("rotated log: %v, %q", err, b)
	}
	if fi, err := os.Lstat(log + ".1"); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("rotated log: %v; want it root's", err)
	}
	assertAppendOnlyLog(t, log, uid, gid)
	if fi, _ := os.Stat(log); fi.Size() != 0 {
		t.Errorf("new log: %d bytes, want it empty", fi.Size())
	}

	receiveAs(t, "banpush", log, "203.0.113.202")
	f2b.waitFor("the ban after the rotation", banned("203.0.113.202"))

	// A second rotation compresses the first (delaycompress), as root, in
	// a directory the account's group may write to.
	out = mustRun(t, "logrotate", "-f", "-s", filepath.Join(t.TempDir(), "logrotate.state"), "/etc/logrotate.d/banpush")
	if fi, err := os.Lstat(log + ".2.gz"); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("second rotation: %s.2.gz: %v; want it root's\n%s", log, err, out)
	}
	assertAppendOnlyLog(t, log, uid, gid)
	receiveAs(t, "banpush", log, "203.0.113.203")
	f2b.waitFor("the ban after the second rotation", banned("203.0.113.203"))

	// While root has the directory closed (between prerotate and
	// postrotate), a receiver answers "try again later", as a busy one
	// does, not "cannot write": the sender retries it soon, and status
	// shows no failure a person must fix.
	mustRun(t, "/usr/local/bin/banpush", "setup-account", "--rotate", "--log", log)
	for _, req := range []string{"ban", "ping"} {
		out, code := requestAs(t, "banpush", log, req, "203.0.113.204")
		if code != exitTemp {
			t.Errorf("%s while the log's directory is closed: exit %d, want %d\n%s", req, code, exitTemp, out)
		}
	}
	// A directory of root's closed otherwise is a setup to fix.
	if err := os.Chmod(filepath.Dir(log), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, code := requestAs(t, "banpush", log, "ban", "203.0.113.204"); code != exitCannotWrite {
		t.Errorf("ban with the log's directory root's, mode 0700: exit %d, want %d\n%s", code, exitCannotWrite, out)
	}
	mustRun(t, "/usr/local/bin/banpush", "setup-account", "--log", log)
	assertAppendOnlyLog(t, log, uid, gid)
}
