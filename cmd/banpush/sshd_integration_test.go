package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// This file runs the receiver the way it runs in production: the real
// OpenSSH sshd, an authorized_keys line written by 'banpush authorize', the
// real OpenSSH client. It checks that the key delivers bans and can do
// nothing else.
//
// Every attack is first made with a control key that has no restrictions,
// and must succeed: that proves the attack works against this sshd, so its
// failure with the peer's key is the authorized_keys line's doing.

// sshTimeout bounds every client run, so that a hang fails the test.
const sshTimeout = 30 * time.Second

// buildBanpush returns the banpush binary: sshd needs a real executable as
// the forced command, and the test binary is not one.
func buildBanpush(t *testing.T) string {
	t.Helper()
	return builtBanpush(t)
}

// result is what a client run did.
type result struct {
	code           int // exit status; -1 when killed
	stdout, stderr string
}

// runClient runs prog (ssh, scp, sftp) with args and stdin, bounded by
// sshTimeout.
func runClient(t *testing.T, stdin string, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", prog, err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// target is a TCP listener on 127.0.0.1 that greets every connection with
// "canary\n": a forwarded connection that reads the greeting got through.
type target struct {
	addr     string
	accepted atomic.Int64
}

func startTarget(t *testing.T) *target {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tg := &target{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tg.accepted.Add(1)
			io.WriteString(c, "canary\n")
			c.Close()
		}
	}()
	return tg
}

func (tg *target) port() string {
	_, p, _ := net.SplitHostPort(tg.addr)
	return p
}

// greeted reports whether c, a connection into a tunnel, reads the target's
// greeting before it is closed.
func greeted(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(sshTimeout))
	b, _ := io.ReadAll(c)
	return bytes.Contains(b, []byte("canary\n"))
}

// freePort returns a port held for the test (sshdtest.ReservePort) that
// ssh may listen on: no other socket can take it meanwhile.
func freePort(t *testing.T) string {
	t.Helper()
	p, err := sshdtest.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return strconv.Itoa(p.Number)
}

// background starts ssh with args and stops it when the test ends. The
// returned channel is closed when ssh exits.
func background(t *testing.T, args ...string) <-chan struct{} {
	t.Helper()
	cmd := exec.Command("ssh", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("ssh %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return done
}

// dialUntil dials addr until it accepts, ssh exits, or sshTimeout passes.
func dialUntil(addr string, exited <-chan struct{}) (net.Conn, error) {
	deadline := time.After(sshTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c, nil
		}
		select {
		case <-exited:
			return nil, errors.New("ssh exited")
		case <-deadline:
			return nil, err
		case <-tick.C:
		}
	}
}

// socks5Connect asks a SOCKS5 proxy on c to connect to 127.0.0.1:port.
func socks5Connect(c net.Conn, port string) error {
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(sshTimeout))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil { // version 5, one method: no auth
		return err
	}
	reply := make([]byte, 2)
	if _, err := io.ReadFull(c, reply); err != nil {
		return err
	}
	_, err = c.Write([]byte{5, 1, 0, 1, 127, 0, 0, 1, byte(p >> 8), byte(p)}) // CONNECT IPv4
	return err
}

// outcome is what an attempt achieved.
type outcome struct {
	through bool // the attack got through
	code    int  // ssh's exit status, or -1 when the client was not ssh
}

// attack is one thing a key should or should not be able to do.
type attack struct {
	name string
	run  func(t *testing.T, keyPath string) outcome
	// peerExit, when not 0, is the exit status ssh must report for the
	// peer's key: the receiver's 64, when the attempt ends up as an
	// unknown request.
	peerExit int
	// sshdSays, when set, must appear in sshd's log after the peer's
	// attempt: proof that the request reached sshd and was refused there.
	sshdSays string
	// sshdNever, when set, must not appear in sshd's log after the
	// peer's attempt, once sshdSays has.
	sshdNever string
}

func TestReceiverOverOpenSSH(t *testing.T) {
	sshdtest.Require(t)
	bin := buildBanpush(t)
	dir := t.TempDir()
	logPath := filepath.Join(sshdtest.AccountDir(t), "received.log")
	peerKey, peerPub, _ := sshdtest.NewKey(t, dir, "peer", "")
	controlKey, controlPub, _ := sshdtest.NewKey(t, dir, "control", "")

	r := runClient(t, "", bin, "authorize", "--peer", "web1", "--log", logPath, "--binary", bin, peerPub)
	if r.code != 0 {
		t.Fatalf("banpush authorize: exit %d\n%s", r.code, r.stderr)
	}
	line := r.stdout
	if !strings.HasPrefix(line, "restrict,") || strings.Count(line, "\n") != 1 {
		t.Fatalf("banpush authorize printed %q, want one line starting with restrict,", line)
	}
	s := sshdtest.Start(t, sshdtest.Config{
		// The peer's line, and a control key with no restrictions.
		AuthorizedKeys: line + readFile(t, controlPub),
		// Debian's defaults, with every feature the peer's key must not
		// reach turned on explicitly. DEBUG2 makes sshd log its refusals.
		Extra: []string{
			"LogLevel DEBUG2",
			"AcceptEnv LANG LC_*",
			"PermitUserEnvironment no",
			"AllowTcpForwarding yes",
			"AllowAgentForwarding yes",
			"PermitTTY yes",
			"X11Forwarding yes",
		},
	})
	known := s.KnownHostsFile()
	opts := func(key string, extra ...string) []string {
		// OpenSSH keeps the first value of an option: extra goes first.
		return append(extra, s.ClientOptions(key, known)...)
	}

	t.Run("ban lands in the log", func(t *testing.T) {
		batch := "203.0.113.7 jail=sshd time=1700000000 bantime=600\n" +
			"2001:db8::1\n" +
			"10.1.2.3\n" + // private: refused
			"203.0.113.7\n" // duplicate: refused, written once
		r := runClient(t, batch, "ssh", append(opts(peerKey), s.Host, "banpush-v1 ban")...)
		if r.code != 0 {
			t.Fatalf("got exit %d, want 0\nstderr: %s", r.code, r.stderr)
		}
		if want := "banpush-v1 ok accepted=2 refused=2\n"; r.stdout != want {
			t.Errorf("got answer %q, want %q", r.stdout, want)
		}
		for _, want := range []string{"banpush: line 3: refused", "banpush: line 4: refused"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("got stderr %q, want it to contain %q", r.stderr, want)
			}
		}
		got := readFile(t, logPath)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		wantEnds := []string{
			" banpush: ban 203.0.113.7 peer=web1 jail=sshd time=1700000000 bantime=600",
			" banpush: ban 2001:db8::1 peer=web1",
		}
		if len(lines) != len(wantEnds) {
			t.Fatalf("got %d log lines, want %d:\n%s", len(lines), len(wantEnds), got)
		}
		for i, want := range wantEnds {
			if !strings.HasSuffix(lines[i], want) {
				t.Errorf("log line %d: got %q, want it to end with %q", i+1, lines[i], want)
			}
		}
	})

	t.Run("ping", func(t *testing.T) {
		r := runClient(t, "", "ssh", append(opts(peerKey), s.Host, "banpush-v1 ping")...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "banpush-v1 ok peer=web1 version=") {
			t.Errorf("got exit %d, answer %q, want 0 and banpush-v1 ok peer=web1 version=...\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})

	// Written on the server's side, by the login account.
	canary := filepath.Join(filepath.Dir(logPath), "canary")
	stolen := filepath.Join(dir, "stolen")
	upload := filepath.Join(dir, "upload")
	if err := os.WriteFile(upload, []byte("payload\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	}
	// viaSSH runs ssh with extra options, stdin and a remote command;
	// the attack got through when the canary exists afterwards.
	viaSSH := func(stdin string, extra []string, remote ...string) func(*testing.T, string) outcome {
		return func(t *testing.T, key string) outcome {
			r := runClient(t, stdin, "ssh", append(append(opts(key, extra...), s.Host), remote...)...)
			return outcome{exists(canary), r.code}
		}
	}
	// via runs prog (scp, sftp) with extra options and args; the attack
	// got through when path exists afterwards.
	via := func(path, prog string, extra []string, args ...string) func(*testing.T, string) outcome {
		return func(t *testing.T, key string) outcome {
			runClient(t, "", prog, append(opts(key, extra...), args...)...)
			return outcome{exists(path), -1}
		}
	}
	sftpBatch := filepath.Join(dir, "sftp-batch")
	if err := os.WriteFile(sftpBatch, []byte("put "+upload+" "+canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := startTarget(t)
	agentSock := startAgent(t, dir)

	attacks := []attack{
		{name: "shell, no command", run: viaSSH("touch "+canary+"\n", nil), peerExit: 64},
		{name: "shell with -t", run: viaSSH("touch "+canary+"\n", []string{"-t"}), peerExit: 64},
		{name: "command touch", run: viaSSH("", nil, "touch "+canary), peerExit: 64},
		{name: "command id", run: viaSSH("", nil, "id >"+canary), peerExit: 64},
		{name: "command cat /etc/passwd", run: viaSSH("", nil, "cat /etc/passwd >"+canary), peerExit: 64},
		{name: "command sh -c", run: viaSSH("", nil, "sh -c 'touch "+canary+"'"), peerExit: 64},
		{name: "request then ;", run: viaSSH("", nil, "banpush-v1 ping; touch "+canary), peerExit: 64},
		{name: "request then ||", run: viaSSH("", nil, "banpush-v1 ping || touch "+canary), peerExit: 64},
		{name: "request then |", run: viaSSH("", nil, "banpush-v1 ping | touch "+canary), peerExit: 64},
		{name: "request then newline", run: viaSSH("", nil, "banpush-v1 ping\ntouch "+canary), peerExit: 64},
		{name: "request with $()", run: viaSSH("", nil, "banpush-v1 ban $(touch "+canary+")"), peerExit: 64},
		{name: "request with backquotes", run: viaSSH("", nil, "banpush-v1 ban `touch "+canary+"`"), peerExit: 64},
		{
			name: "pty with -tt",
			// ssh itself gives up (exit 255) when a forced pty is refused.
			run:      viaSSH("", []string{"-tt"}, "tty >"+canary),
			sshdSays: "Allocating a pty not permitted",
		},
		{
			name:     "agent forwarding -A",
			run:      viaSSH("", []string{"-A", "-o", "IdentityAgent=" + agentSock}, `test -S "$SSH_AUTH_SOCK" && touch `+canary),
			peerExit: 64,
			sshdSays: "agent forwarding disabled",
		},
		{name: "sftp -b put", run: via(canary, "sftp", []string{"-b", sftpBatch}, s.Host)},
		{
			name: "sftp subsystem with ssh -s",
			run: func(t *testing.T, key string) outcome {
				return sftpInit(t, append(opts(key, "-s"), s.Host, "sftp"))
			},
			peerExit: 64,
		},
		{name: "scp -O upload", run: via(canary, "scp", []string{"-O"}, upload, s.Host+":"+canary)},
		{name: "scp -O download", run: via(stolen, "scp", []string{"-O"}, s.Host+":/etc/passwd", stolen)},
		{name: "scp over sftp upload", run: via(canary, "scp", []string{"-s"}, upload, s.Host+":"+canary)},
		{name: "scp over sftp download", run: via(stolen, "scp", []string{"-s"}, s.Host+":/etc/passwd", stolen)},
		{
			name: "local forward -L",
			run: func(t *testing.T, key string) outcome {
				local := "127.0.0.1:" + freePort(t)
				exited := background(t, append(opts(key, "-N", "-L", local+":"+tg.addr), s.Host)...)
				c, err := dialUntil(local, exited)
				if err != nil {
					t.Fatalf("ssh -L did not listen on %s: %v", local, err)
				}
				defer c.Close()
				return outcome{greeted(c), -1}
			},
			sshdSays: "refused local port forward",
		},
		{
			name: "dynamic forward -D",
			run: func(t *testing.T, key string) outcome {
				local := "127.0.0.1:" + freePort(t)
				exited := background(t, append(opts(key, "-N", "-D", local), s.Host)...)
				c, err := dialUntil(local, exited)
				if err != nil {
					t.Fatalf("ssh -D did not listen on %s: %v", local, err)
				}
				defer c.Close()
				if err := socks5Connect(c, tg.port()); err != nil {
					return outcome{false, -1}
				}
				return outcome{greeted(c), -1}
			},
			sshdSays: "refused local port forward",
		},
		{
			name: "remote forward -R",
			run: func(t *testing.T, key string) outcome {
				remote := "127.0.0.1:" + freePort(t)
				exited := background(t, append(opts(key, "-N", "-o", "ExitOnForwardFailure=yes", "-R", remote+":"+tg.addr), s.Host)...)
				c, err := dialUntil(remote, exited)
				if err != nil {
					return outcome{false, -1}
				}
				defer c.Close()
				return outcome{greeted(c), -1}
			},
			// sshd refuses without a word; had it accepted, it would have
			// said so right after the request.
			sshdSays:  "tcpip-forward listen 127.0.0.1",
			sshdNever: "Local forwarding listening",
		},
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			clean := func() {
				for _, p := range []string{canary, stolen} {
					if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
				}
			}
			clean()
			if !a.run(t, controlKey).through {
				t.Fatalf("with the control key: the attack failed, want it to work (else this test proves nothing)")
			}
			clean()
			beforeLog := readFile(t, logPath)
			since := len(s.Log())
			accepted := tg.accepted.Load()
			got := a.run(t, peerKey)
			if got.through {
				t.Errorf("with the peer's key: the attack got through")
			}
			if a.peerExit != 0 && got.code != a.peerExit {
				t.Errorf("with the peer's key: got ssh exit %d, want %d (the receiver refusing the request)", got.code, a.peerExit)
			}
			for _, p := range []string{canary, stolen} {
				if exists(p) {
					t.Errorf("with the peer's key: %s exists", p)
				}
			}
			if after := readFile(t, logPath); after != beforeLog {
				t.Errorf("the log changed:\nbefore:\n%s\nafter:\n%s", beforeLog, after)
			}
			if n := tg.accepted.Load() - accepted; n != 0 {
				t.Errorf("with the peer's key: the forward target accepted %d connections, want 0", n)
			}
			if a.sshdSays != "" {
				s.WaitLog(since, a.sshdSays, sshTimeout)
			}
			if a.sshdNever != "" && strings.Contains(s.Log()[since:], a.sshdNever) {
				t.Errorf("sshd logged %q for the peer's key", a.sshdNever)
			}
		})
	}

	t.Run("environment variables", func(t *testing.T) {
		// BASH_ENV and ENV would make the account's shell, which runs the
		// forced command, source a file; LD_PRELOAD would load a library
		// into it; BANPUSH_* could steer banpush. A stock sshd accepts
		// only LANG and LC_*; LC_* is used here to check that the values
		// sent do arrive, and that a function-like value does nothing.
		evil := filepath.Join(dir, "evil.sh")
		if err := os.WriteFile(evil, []byte("touch "+canary+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		spool := filepath.Join(dir, "spool-canary")
		setEnv := "SetEnv=BASH_ENV=" + evil + " ENV=" + evil + " LD_PRELOAD=" + filepath.Join(dir, "evil.so") +
			" BANPUSH_SPOOL=" + spool + " BANPUSH_INVENTORY=" + filepath.Join(dir, "peers") +
			" LC_CANARY=sent"
		shellshock := "LC_SHELLSHOCK=() { :; }; touch " + canary

		control := runClient(t, "", "ssh", append(opts(controlKey, "-o", setEnv), s.Host, "echo $LC_CANARY")...)
		if control.stdout != "sent\n" {
			t.Fatalf("with the control key: got %q for LC_CANARY, want %q (SetEnv does not work)", control.stdout, "sent\n")
		}
		beforeLog := readFile(t, logPath)
		since := len(s.Log())
		cmd := exec.Command("ssh", append(opts(peerKey, "-o", setEnv, "-o", "SendEnv=LC_SHELLSHOCK"), s.Host, "banpush-v1 ping")...)
		cmd.Env = append(os.Environ(), shellshock)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ping with environment: %v\n%s", err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "banpush-v1 ok peer=web1 ") {
			t.Errorf("got answer %q, want banpush-v1 ok peer=web1 ...", stdout.String())
		}
		if strings.Contains(stderr.String(), "ld.so") {
			t.Errorf("LD_PRELOAD reached the forced command: %s", stderr.String())
		}
		for _, p := range []string{canary, spool} {
			if exists(p) {
				t.Errorf("%s exists", p)
			}
		}
		if after := readFile(t, logPath); after != beforeLog {
			t.Errorf("the log changed:\nbefore:\n%s\nafter:\n%s", beforeLog, after)
		}
		s.WaitLog(since, "Ignoring env request BASH_ENV", sshTimeout)
		s.WaitLog(since, "Ignoring env request LD_PRELOAD", sshTimeout)
	})

}

// sftpInit opens an sftp session with ssh args and reports whether an
// sftp server answered its SSH_FXP_INIT. stdin stays open until the answer
// comes: sftp-server exits at end of input without answering.
func sftpInit(t *testing.T, args []string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Length 5, SSH_FXP_INIT (1), version 3.
	stdin.Write([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3})
	answer := make([]byte, 5)
	_, err = io.ReadFull(stdout, answer)
	stdin.Close()
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	// SSH_FXP_VERSION is 2.
	return outcome{err == nil && answer[4] == 2, cmd.ProcessState.ExitCode()}
}

// readFile returns the content of path, or "" when it does not exist.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// startAgent runs an empty ssh-agent on a socket in dir for the test.
func startAgent(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(sshTimeout)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh-agent did not listen on %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
