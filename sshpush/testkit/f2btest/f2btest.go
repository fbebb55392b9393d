// Package f2btest runs a private, real fail2ban server for one test: the
// installed fail2ban-server in the foreground, on a configuration
// directory of the test's, with its socket, pid file, database and log in
// a directory of the test's. It is stopped when the test ends, and killed
// with the test binary (Pdeathsig; in testenv's sandbox, its namespaces go
// with the binary anyway). It never touches the machine's fail2ban, its
// socket or its log.
//
// It trusts its caller and the installed fail2ban-server and
// fail2ban-client. It is for tests only: it reports through testing.T.
package f2btest

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

// Server is a private fail2ban server.
type Server struct {
	Conf   string // the configuration directory (fail2ban-client -c)
	Log    string // the server's log, its logtarget
	Socket string // the server's socket (fail2ban-client -s)

	t    *testing.T
	done chan struct{} // closed when the server has exited
}

// waitTimeout bounds WaitFor, and the wait for the server to stop.
const waitTimeout = 30 * time.Second

// Start runs fail2ban-server in the foreground on conf, a configuration
// directory with a fail2ban.conf, jail.conf and the filters and actions
// its jails need, after writing conf/fail2ban.local with the server's
// socket, pid file, database and log (fail2ban.log) in dir, and waits
// until it answers. The server is stopped when the test ends; if the test
// failed, its log is logged. It skips the test (fails it in CI) without
// fail2ban.
func Start(t *testing.T, conf, dir string) *Server {
	t.Helper()
	testenv.Need(t, testenv.Fail2ban()...)
	s := &Server{Conf: conf, Log: filepath.Join(dir, "fail2ban.log"), Socket: filepath.Join(dir, "fail2ban.sock"), t: t}
	local := "[Definition]\n" +
		"logtarget = " + s.Log + "\n" +
		"socket = " + s.Socket + "\n" +
		"pidfile = " + filepath.Join(dir, "fail2ban.pid") + "\n" +
		"dbfile = " + filepath.Join(dir, "fail2ban.sqlite3") + "\n"
	if err := os.WriteFile(filepath.Join(conf, "fail2ban.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("fail2ban-server", "-f", "-x", "-c", conf)
	// If the test binary dies, so does the server. Best effort: the
	// signal comes when the thread that started it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.Stop()
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.Log)
			t.Logf("fail2ban log:\n%s", b)
		}
	})
	s.WaitFor("the server to answer", func() bool { return strings.Contains(s.Client("ping"), "pong") })
	return s
}

// Stop asks the server to stop and waits (up to 30 s) until it has.
func (s *Server) Stop() {
	exec.Command("fail2ban-client", "-c", s.Conf, "stop").Run()
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
	}
}

// Client runs fail2ban-client -c CONF with args and returns its output.
func (s *Server) Client(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "fail2ban-client", append([]string{"-c", s.Conf}, args...)...).CombinedOutput()
	return string(out)
}

// WaitFor polls cond until it holds, and fails the test if it does not
// within 30 s.
func (s *Server) WaitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("fail2ban: %s: not within %s", what, waitTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
