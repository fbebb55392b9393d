package sshdtest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// maxLogShown is how much of the end of sshd's log a failed test shows.
const maxLogShown = 16 << 10

// Require skips the test when sshd, ssh or ssh-keygen is missing, naming the
// Debian packages to install; in CI it fails the test instead (see
// testenv.Need).
func Require(t testing.TB) {
	t.Helper()
	testenv.Need(t, testenv.OpenSSH()...)
}

// Server is a Daemon for a test: its methods fail the test instead of
// returning an error. The embedded Daemon's own methods stay reachable as
// s.Daemon.Stop() and so on.
type Server struct {
	*Daemon
	t testing.TB
}

// Start calls Require, then Launch with cfg (in t.TempDir() unless
// cfg.Dir is set; logging in as LoginAccount unless cfg.User is set), and
// fails the test if sshd does not start. The server
// and everything it started are stopped when the test ends, before the
// test's temporary directories are removed; the end of sshd's log is shown
// if the test failed.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	return StartMany(t, cfg)[0]
}

// StartMany is Start for several servers, which it launches concurrently:
// a fleet of sshd starts in about the time of one. It fails the test if
// any does not start (and stops those that did when the test ends).
func StartMany(t testing.TB, cfgs ...Config) []*Server {
	t.Helper()
	Require(t)
	for i := range cfgs {
		if cfgs[i].Dir == "" {
			cfgs[i].Dir = t.TempDir()
		}
		if cfgs[i].User == "" {
			cfgs[i].User = LoginAccount(t).Name
		}
		Reachable(t, cfgs[i].Dir)
	}
	ds := make([]*Daemon, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[i], errs[i] = Launch(cfg)
		}()
	}
	wg.Wait()
	servers := make([]*Server, len(cfgs))
	for i, d := range ds {
		if d == nil {
			continue
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
			if t.Failed() {
				log, _ := d.Log()
				if len(log) > maxLogShown {
					log = "...\n" + log[len(log)-maxLogShown:]
				}
				t.Logf("sshd log (%s):\n%s", d.logPath, log)
			}
		})
		servers[i] = &Server{Daemon: d, t: t}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return servers
}

// Start starts a stopped server again on the same port, with the same keys
// and configuration.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.Daemon.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// Stop stops sshd and everything it started, as a machine going down
// would (see Daemon.Stop). It does nothing if the server is stopped.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.Daemon.Stop(); err != nil {
		s.t.Fatal(err)
	}
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Daemon.Restart(); err != nil {
		s.t.Fatal(err)
	}
}

// SetAuthorizedKeys replaces the authorized_keys content. sshd reads it at
// every login, so the server needs no restart.
func (s *Server) SetAuthorizedKeys(content string) {
	s.t.Helper()
	if err := s.Daemon.SetAuthorizedKeys(content); err != nil {
		s.t.Fatal(err)
	}
}

// KnownHostsFile writes KnownHostsLines to a file in s.Dir and returns its
// path.
func (s *Server) KnownHostsFile() string {
	s.t.Helper()
	path, err := s.Daemon.KnownHostsFile()
	if err != nil {
		s.t.Fatal(err)
	}
	return path
}

// ClientOptions is Daemon.ClientOptions for a test.
func (s *Server) ClientOptions(keyPath, knownHosts string) []string {
	s.t.Helper()
	opts, err := s.Daemon.ClientOptions(keyPath, knownHosts)
	if err != nil {
		s.t.Fatal(err)
	}
	return opts
}

// SSHArgs returns the arguments for ssh to log in to this server (see
// Daemon.ClientOptions); append the remote command, if any.
func (s *Server) SSHArgs(keyPath, knownHosts string) []string {
	return append(s.ClientOptions(keyPath, knownHosts), s.Host)
}

// Log returns everything sshd has logged, across restarts. A read error
// marks the test failed.
func (s *Server) Log() string {
	s.t.Helper()
	log, err := s.Daemon.Log()
	if err != nil {
		s.t.Error(err)
	}
	return log
}

// Connections counts the TCP connections sshd has accepted, across
// restarts, whether or not they logged in. A read error marks the test
// failed.
func (s *Server) Connections() int {
	s.t.Helper()
	n, err := s.Daemon.Connections()
	if err != nil {
		s.t.Error(err)
	}
	return n
}

// WaitLog waits until the part of sshd's log after byte offset since
// contains substr, or fails the test after timeout. Take since from
// len(s.Log()) before the step being checked (0 searches the whole log):
// sshd may log after the client has gone.
func (s *Server) WaitLog(since int, substr string, timeout time.Duration) {
	s.t.Helper()
	if err := s.Daemon.WaitLog(since, substr, timeout); err != nil {
		s.t.Fatal(err)
	}
}
