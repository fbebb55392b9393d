package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

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
	f2b := f2btest.Start(t, conf, filepath.Dir(conf))
	banned := func(addr string) func() bool {
		return func() bool { return strings.Contains(f2b.Client("status", "banpush"), addr) }
	}

	receiveAs(t, "banpush", log, "203.0.113.201")
	f2b.WaitFor("the ban before the rotation", banned("203.0.113.201"))

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
	f2b.WaitFor("the ban after the rotation", banned("203.0.113.202"))

	// A second rotation compresses the first (delaycompress), as root, in
	// a directory the account's group may write to.
	out = mustRun(t, "logrotate", "-f", "-s", filepath.Join(t.TempDir(), "logrotate.state"), "/etc/logrotate.d/banpush")
	if fi, err := os.Lstat(log + ".2.gz"); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("second rotation: %s.2.gz: %v; want it root's\n%s", log, err, out)
	}
	assertAppendOnlyLog(t, log, uid, gid)
	receiveAs(t, "banpush", log, "203.0.113.203")
	f2b.WaitFor("the ban after the second rotation", banned("203.0.113.203"))

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
