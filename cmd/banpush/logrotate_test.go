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

	"github.com/banpush/banpush/sshpush/testenv"
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

// TestLogrotate: the contrib logrotate file, run by the real logrotate,
// rotates the received log as the receiving account (su), recreates it
// with the account's owner and mode, and the receiver and a real fail2ban
// watching the log keep working across the rotation.
func TestLogrotate(t *testing.T) {
	testenv.Need(t, append(testenv.Fail2ban(),
		testenv.Root("rotates as another account"),
		testenv.Command("logrotate", "logrotate"))...)
	const account, uid = "nobody", 65534
	conf := f2bConfDir(t, `[banpush]
logpath = $TMP/received.log
action = dummy[target="$TMP/dummy"]
`)
	tmp := filepath.Dir(conf)
	// The receiving account must reach its log directory, which belongs to
	// it, as /var/log/banpush does.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	logDir := filepath.Join(tmp, "log")
	if err := os.Mkdir(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(logDir, "received.log")
	writeTestFile(t, log, "")
	for _, p := range []string{logDir, log} {
		if err := os.Chown(p, uid, 4); err != nil { // group adm, as setup-receiver.sh makes it
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(tmp, "received.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(log, filepath.Join(tmp, "received.log")); err != nil {
		t.Fatal(err)
	}
	f2b := startFail2ban(t, conf, tmp)

	receive := func(addr string) {
		t.Helper()
		code, stdout, stderr := runReceiveNow(t, []byte(addr+"\n"), "--peer", "web1", "--log", log)
		if code != 0 || !strings.Contains(stdout, "accepted=1") {
			t.Fatalf("receive %s: exit %d, %q, %q", addr, code, stdout, stderr)
		}
	}
	banned := func(addr string) func() bool {
		return func() bool { return strings.Contains(f2b.client("status", "banpush"), addr) }
	}

	receive("203.0.113.201")
	f2b.waitFor("the ban before the rotation", banned("203.0.113.201"))

	rot, err := os.ReadFile(filepath.Join("..", "..", "contrib", "logrotate.d", "banpush"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rot), "\tsu banpush adm\n") {
		t.Fatalf("contrib/logrotate.d/banpush does not rotate as the receiving account (su banpush adm)")
	}
	cfg := strings.NewReplacer("/var/log/banpush/received.log", log, "banpush adm", account+" adm").Replace(string(rot))
	cfgPath := filepath.Join(tmp, "logrotate.conf")
	writeTestFile(t, cfgPath, cfg)
	if out, err := exec.Command("logrotate", "-f", "-s", filepath.Join(tmp, "logrotate.state"), cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(log + ".1"); err != nil || !strings.Contains(string(b), "203.0.113.201") {
		t.Fatalf("rotated log: %v, %q", err, b)
	}
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != 4 || fi.Mode().Perm() != 0o640 || fi.Size() != 0 {
		t.Errorf("new log: owner %d:%d mode %v size %d; want %d:4 0640, empty", st.Uid, st.Gid, fi.Mode().Perm(), fi.Size(), uid)
	}

	receive("203.0.113.202")
	f2b.waitFor("the ban after the rotation", banned("203.0.113.202"))
}

// runReceiveNow runs a ban request through 'banpush receive' in-process,
// stamped with the real time (fail2ban ignores lines far from it).
func runReceiveNow(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	env := &Env{
		Stdin: strings.NewReader(string(stdin)), Stdout: &out, Stderr: &errb, Now: time.Now,
		Getenv: func(k string) string {
			switch k {
			case "SSH_ORIGINAL_COMMAND":
				return "banpush-v1 ban"
			case "SSH_CONNECTION":
				return "198.51.100.99 40000 192.0.2.1 22"
			case "HOME":
				return t.TempDir()
			}
			return ""
		},
	}
	code = Main(append([]string{"receive"}, args...), env)
	return code, out.String(), errb.String()
}
