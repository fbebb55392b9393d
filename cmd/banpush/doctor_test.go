package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/doctor"
	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// runDoctor runs 'banpush doctor --json' in this process and returns its
// checks and exit status.
func runDoctor(t *testing.T, args ...string) ([]doctor.Result, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"doctor", "--json"}, args...), &Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(string) string { return "" }, Now: time.Now,
	})
	var rs []doctor.Result
	if err := json.Unmarshal(stdout.Bytes(), &rs); err != nil {
		t.Fatalf("doctor --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return rs, code
}

// check returns the result of check for subject, failing the test if
// there is none.
func check(t *testing.T, rs []doctor.Result, name, subject string) doctor.Result {
	t.Helper()
	for _, r := range rs {
		if r.Check == name && r.Subject == subject {
			return r
		}
	}
	t.Fatalf("no %s %s check in %+v", name, subject, rs)
	return doctor.Result{}
}

// TestDoctorReloadTrap reproduces fail2ban's reload trap with a private
// fail2ban 1.0.2: the banpush action added to the running sshd jail by a
// jail.d file and a reload is not loaded, though the reload says OK.
// doctor fails that check and names the fix; after 'reload --restart
// sshd' the check passes.
func TestDoctorReloadTrap(t *testing.T) {
	testenv.Need(t, testenv.Fail2ban()...)
	conf := f2bConfDir(t, `[sshd]
enabled = true
backend = polling
logpath = $TMP/auth.log
action = dummy[target="$TMP/dummy"]

[banpush]
logpath = $TMP/received.log
`)
	dir := filepath.Dir(conf)
	f := f2btest.Start(t, conf, dir)
	inv := filepath.Join(dir, "peers")
	writeTestFile(t, inv, "Host web2\n    HostName 192.0.2.11\n")
	args := []string{"--inventory", inv, "--spool", filepath.Join(dir, "spool"),
		"--fail2ban-socket", filepath.Join(dir, "fail2ban.sock"), "--fail2ban-config", conf, "--account", "banpush-doctor-test-none"}

	// No jail pushes yet: a pusher that shares nothing is warned.
	rs, code := runDoctor(t, args...)
	if r := check(t, rs, "push-action", ""); r.Status != doctor.Warn || code != 0 {
		t.Errorf("before setup: push-action %s (%s), exit %d; want warn, exit 0", r.Status, r.Found, code)
	}
	if r := check(t, rs, "fail2ban", ""); r.Status != doctor.OK {
		t.Errorf("fail2ban check: %+v, want ok", r)
	}

	// Setup step 10 as the README had it: a jail.d file and a reload.
	writeTestFile(t, filepath.Join(conf, "jail.d", "zz-sshd-banpush.local"),
		"[sshd]\naction = dummy[target=\""+dir+"/dummy\"]\n         banpush[banpush=/bin/true]\n")
	if out := f.Client("reload"); !strings.Contains(out, "OK") {
		t.Fatalf("reload: %s", out)
	}
	if out := f.Client("get", "sshd", "actions"); strings.Contains(out, "banpush") {
		t.Fatalf("the reload trap did not happen (fixed in this fail2ban?): sshd's actions are %q", out)
	}
	rs, code = runDoctor(t, args...)
	r := check(t, rs, "push-action", "sshd")
	if r.Status != doctor.Fail || code != exitDoctor {
		t.Errorf("after reload: push-action sshd %s, exit %d; want fail, exit %d", r.Status, code, exitDoctor)
	}
	if !strings.Contains(r.Found, "reload trap") || !strings.Contains(r.Hint, "fail2ban-client reload --restart sshd") {
		t.Errorf("the failure does not name the trap and its fix: %+v", r)
	}

	if out := f.Client("reload", "--restart", "sshd"); !strings.Contains(out, "OK") {
		t.Fatalf("reload --restart sshd: %s", out)
	}
	rs, code = runDoctor(t, args...)
	if r := check(t, rs, "push-action", "sshd"); r.Status != doctor.OK || code != 0 {
		t.Errorf("after reload --restart: push-action sshd %+v, exit %d; want ok, exit 0", r, code)
	}

	// The push action on the receiving jail is a loop.
	writeTestFile(t, filepath.Join(conf, "jail.d", "zz-sshd-banpush.local"),
		"[banpush]\naction = dummy[target=\""+dir+"/dummy2\"]\n         banpush[banpush=/bin/true]\n")
	rs, _ = runDoctor(t, args...)
	if r := check(t, rs, "push-action", "banpush"); r.Status != doctor.Fail || !strings.Contains(r.Found, "pushed back") {
		t.Errorf("push action on the receiving jail: %+v, want fail", r)
	}

	// fail2ban stopped: that check fails and says where it looked.
	f.Stop()
	rs, code = runDoctor(t, args...)
	if r := check(t, rs, "fail2ban", ""); r.Status != doctor.Fail || !strings.Contains(r.Found, "fail2ban.sock") || code != exitDoctor {
		t.Errorf("fail2ban stopped: %+v, exit %d; want fail naming the socket, exit %d", r, code, exitDoctor)
	}
}

// TestDoctorReceiver: the receiving side of doctor against a real
// fail2ban running the contrib banpush jail and real sshd -T, with root as
// the receiving account and authorized_keys lines from 'banpush
// authorize'.
func TestDoctorReceiver(t *testing.T) {
	testenv.Need(t, append(testenv.Fail2ban(), append(testenv.OpenSSH(), testenv.Root("reads sshd -T and the receiving account"))...)...)
	conf := f2bConfDir(t, "[banpush]\nlogpath = $TMP/received.log\naction = dummy[target=\"$TMP/dummy\"]\n")
	dir := filepath.Dir(conf)
	f2btest.Start(t, conf, dir)
	bin := builtBanpush(t)
	_, pub, _ := sshdtest.NewKey(t, dir, "web1", "")
	log := filepath.Join(dir, "received.log")
	keys := filepath.Join(dir, "authorized_keys")
	line := func(args ...string) string {
		var out bytes.Buffer
		code := Main(append([]string{"authorize", "--peer", "web1", "--binary", bin, pub}, args...), &Env{Stdout: &out, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now})
		if code != 0 {
			t.Fatalf("authorize: exit %d", code)
		}
		return out.String()
	}
	_, caPub, _ := sshdtest.NewKey(t, dir, "user_ca", "")
	var caLine bytes.Buffer
	if code := Main([]string{"authorize", "--cert-authority", caPub, "--log", log, "--binary", bin}, &Env{Stdout: &caLine, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}); code != 0 {
		t.Fatalf("authorize --cert-authority: exit %d", code)
	}
	hostKey := filepath.Join(dir, "host_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	sshdConfig := filepath.Join(dir, "sshd_config")
	writeTestFile(t, sshdConfig, "HostKey "+hostKey+"\n")
	args := []string{"--inventory", filepath.Join(dir, "none"), "--spool", filepath.Join(dir, "spool"),
		"--fail2ban-socket", filepath.Join(dir, "fail2ban.sock"), "--fail2ban-config", conf,
		"--account", "root", "--authorized-keys", keys, "--sshd-config", sshdConfig}

	tests := []struct {
		name    string
		keys    string
		sshd    string
		check   string
		subject string
		want    doctor.Status
		found   string
	}{
		{name: "line ok", keys: line("--log", log, "--from", "192.0.2.10"), check: "authorized-keys", subject: "line 1", want: doctor.OK, found: "log " + log},
		{name: "line without from", keys: line("--log", log), check: "authorized-keys", subject: "line 1", want: doctor.Warn, found: "no from="},
		{name: "missing binary", keys: strings.Replace(line("--log", log), bin, "/nonexistent/banpush", 1), check: "authorized-keys", subject: "line 1", want: doctor.Fail, found: "/nonexistent/banpush"},
		{name: "bad arguments", keys: strings.Replace(line("--log", log), "--max-burst 2000", "--max-burst 0", 1), check: "authorized-keys", subject: "line 1", want: doctor.Fail, found: "--max-burst"},
		{name: "unknown flag", keys: strings.Replace(line("--log", log), "--max-burst", "--max-bust", 1), check: "authorized-keys", subject: "line 1", want: doctor.Fail, found: "arguments"},
		{name: "missing log", keys: line("--log", log+".missing"), check: "authorized-keys", subject: "line 1", want: doctor.Fail, found: "does not exist"},
		{name: "unrestricted key", keys: line("--log", log) + mustRead(t, pub), check: "authorized-keys", subject: "line 2", want: doctor.Fail, found: "without a forced command"},
		{name: "jail watches the log", keys: line("--log", log), check: "receiving-jail", subject: "banpush", want: doctor.OK, found: log},
		{name: "jail watches another log", keys: line("--log", filepath.Join(dir, "auth.log")), check: "receiving-jail", subject: "banpush", want: doctor.Fail, found: "auth.log"},
		{name: "quorum jail not running", keys: line("--log", log, "--trust", "quorum"), check: "receiving-jail", subject: "banpush-quorum", want: doctor.Fail, found: "not running"},
		{name: "sshd allows forwarding", keys: line("--log", log), check: "sshd", subject: "root", want: doctor.Warn, found: "allowtcpforwarding yes"},
		{name: "sshd forbids it", keys: line("--log", log), sshd: "Match User root\n  DisableForwarding yes\n  PermitTTY no\n", check: "sshd", subject: "root", want: doctor.OK, found: "forbids"},
		{name: "cert-authority line", keys: caLine.String(), check: "authorized-keys", subject: "line 1", want: doctor.OK, found: "cert-authority receiver"},
		{name: "cert-authority without auth info", keys: caLine.String(), sshd: "Match User root\n  DisableForwarding yes\n  PermitTTY no\n", check: "sshd", subject: "root", want: doctor.Fail, found: "does not expose auth info"},
		{name: "cert-authority with auth info", keys: caLine.String(), sshd: "Match User root\n  DisableForwarding yes\n  PermitTTY no\n  ExposeAuthInfo yes\n", check: "sshd", subject: "root", want: doctor.OK, found: "forbids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeTestFile(t, keys, tt.keys)
			writeTestFile(t, sshdConfig, "HostKey "+hostKey+"\n"+tt.sshd)
			rs, _ := runDoctor(t, args...)
			r := check(t, rs, tt.check, tt.subject)
			if r.Status != tt.want || !strings.Contains(r.Found, tt.found) {
				t.Errorf("got %s %q (hint %q), want %s containing %q", r.Status, r.Found, r.Hint, tt.want, tt.found)
			}
			if r.Status != doctor.OK && r.Hint == "" {
				t.Errorf("a %s without a hint: %+v", r.Status, r)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
