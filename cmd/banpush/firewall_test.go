package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/testkit/netns"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// firewallConf is a fail2ban configuration directory with contrib's
// receiving jails, watching log, set up for the fast path
// (banpush-firewall.local), and ignoreip 192.0.2.0/24.
func firewallConf(t *testing.T, log string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "fail2ban")
	for _, d := range []string{"filter.d", "jail.d"} {
		if err := os.MkdirAll(filepath.Join(conf, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/etc/fail2ban/fail2ban.conf")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(conf, "fail2ban.conf"), string(b))
	writeTestFile(t, filepath.Join(conf, "jail.conf"), "[DEFAULT]\nignoreip = 192.0.2.0/24\nbanaction_allports = iptables-allports\n")
	contrib := filepath.Join("..", "..", "contrib", "fail2ban")
	files, _ := filepath.Glob(filepath.Join(contrib, "*", "banpush*"))
	for _, f := range files {
		dir := filepath.Base(filepath.Dir(f))
		if dir == "action.d" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(conf, dir, filepath.Base(f)), strings.ReplaceAll(string(b), "/var/log/banpush/received.log", log))
	}
	return conf
}

// TestFirewallCommand: 'banpush firewall', run as the service runs it, in
// a network namespace of the test's own, with contrib's jails and
// banpush-firewall.local read by the real fail2ban-client: the lines the
// jails would ban reach the kernel set and no other; a service killed
// with SIGKILL loses nothing; --remove takes the table away.
func TestFirewallCommand(t *testing.T) {
	testenv.Need(t, append(testenv.Fail2ban(), testenv.Command("nft", "nftables"))...)
	ns := netns.New(t)
	bin := builtBanpush(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "received.log")
	writeTestFile(t, log, "")
	conf := firewallConf(t, log)
	state := filepath.Join(dir, "state", "cursor")
	banpush := func(args ...string) *exec.Cmd {
		args = append([]string{"firewall", "--log", log, "--state", state, "--fail2ban-config", conf}, args...)
		return ns.Command(bin, args...)
	}
	line := func(k logline.Kind, rec string) string {
		r, err := record.Parse([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		return string(logline.Line{Kind: k, Time: time.Now(), Peer: "web1", Record: r, Reports: 2}.Append(nil))
	}
	appendLog := func(s string) {
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	members := func() string {
		return string(ns.Run(t, "nft", "list", "table", "inet", "banpush"))
	}

	appendLog(line(logline.Ban, "203.0.113.7 jail=sshd") + line(logline.Ban, "2001:db8::7") +
		line(logline.Ban, "192.0.2.7") + // ignoreip
		line(logline.Report, "198.51.100.1") + // a report
		line(logline.Quorum, "198.51.100.2")) // banpush-quorum is not enabled
	out, err := banpush("--once").CombinedOutput()
	if err != nil {
		t.Fatalf("firewall --once: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "5 lines read: 2 added, 0 lifted, 2 bans in force; passed over: 2 of no enabled jail, 1 in ignoreip") {
		t.Errorf("firewall --once printed:\n%s", out)
	}
	m := members()
	for _, a := range []string{"203.0.113.7", "2001:db8::7"} {
		if !strings.Contains(m, a+" timeout 59m") && !strings.Contains(m, a+" timeout 1h") {
			t.Errorf("%s not in the set:\n%s", a, m)
		}
	}
	for _, a := range []string{"192.0.2.7", "198.51.100.1", "198.51.100.2"} {
		if strings.Contains(m, a) {
			t.Errorf("%s in the set:\n%s", a, m)
		}
	}

	// The service, killed with SIGKILL while it follows the log.
	svc := banpush("--interval", "20ms")
	var svcOut bytes.Buffer
	svc.Stdout, svc.Stderr = &svcOut, &svcOut
	svc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	var burst strings.Builder
	for i := range 1000 {
		burst.WriteString(line(logline.Ban, fmt.Sprintf("198.18.%d.%d", i>>8, i&255)))
	}
	// 198.18.0.0/15 is refused by the policy: a line of a public
	// address closes the burst, and shows the service has read it.
	appendLog(burst.String() + line(logline.Ban, "203.0.113.8") + line(logline.Unban, "203.0.113.7"))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(members(), "203.0.113.8") {
		if time.Now().After(deadline) {
			svc.Process.Kill()
			svc.Wait()
			t.Fatalf("the service did not ban 203.0.113.8 in 10 s:\n%s", svcOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	appendLog(line(logline.Ban, "203.0.113.9"))
	svc.Process.Signal(syscall.SIGKILL)
	svc.Wait()
	if out, err := banpush("--once").CombinedOutput(); err != nil {
		t.Fatalf("firewall --once after SIGKILL: %v\n%s", err, out)
	}
	m = members()
	if !strings.Contains(m, "203.0.113.8") || !strings.Contains(m, "203.0.113.9") || strings.Contains(m, "203.0.113.7 ") || strings.Contains(m, "198.18.") {
		t.Errorf("after SIGKILL and a restart, the set is:\n%s", m)
	}

	// 'banpush unban' here lifts a received ban from the kernel set at
	// once, and from the state: the next run does not put it back.
	unban := ns.Command(bin, "--spool", filepath.Join(dir, "spool"), "--inventory", filepath.Join(dir, "peers"),
		"--fail2ban-socket", filepath.Join(dir, "none.sock"), "unban", "--firewall-state", state, "203.0.113.8")
	if out, err := unban.CombinedOutput(); err != nil || !strings.Contains(string(out), "203.0.113.8: lifted from the fast path") {
		t.Errorf("unban: %v\n%s", err, out)
	}
	if m := members(); strings.Contains(m, "203.0.113.8") {
		t.Errorf("203.0.113.8 still in the set after 'banpush unban':\n%s", m)
	}
	if out, err := banpush("--once").CombinedOutput(); err != nil || !strings.Contains(string(out), "2 bans in force") {
		t.Errorf("firewall --once after unban: %v\n%s", err, out)
	}
	if m := members(); strings.Contains(m, "203.0.113.8") || !strings.Contains(m, "203.0.113.9") {
		t.Errorf("after the unban and a run, the set is:\n%s", m)
	}

	// A log the jails do not watch: their settings are not meant for it.
	other := filepath.Join(dir, "other.log")
	writeTestFile(t, other, "")
	out, err = ns.Command(bin, "firewall", "--once", "--log", other, "--state", filepath.Join(dir, "other", "cursor"), "--fail2ban-config", conf).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitConfig || !strings.Contains(string(out), "the jail banpush watches "+log+", not "+other) {
		t.Errorf("firewall --log of a log no jail watches: %v\n%s", err, out)
	}

	if out, err := banpush("--remove").CombinedOutput(); err != nil {
		t.Fatalf("firewall --remove: %v\n%s", err, out)
	}
	if err := ns.Command("nft", "list", "table", "inet", "banpush").Run(); err == nil {
		t.Error("the table is still there after --remove")
	}
}
