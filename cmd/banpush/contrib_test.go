package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// f2bConfDir makes a private fail2ban configuration: the packaged *.conf
// files of /etc/fail2ban (no local overrides, no jail.d), the contrib
// filter, action and receiving jail, and jail.d/test.local from the
// caller. Logs the jails need exist in the same temporary directory,
// under the names auth.log and received.log.
func f2bConfDir(t *testing.T, local string) string {
	t.Helper()
	testenv.Need(t, testenv.Command("fail2ban-client", "fail2ban"))
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "fail2ban")
	err := filepath.WalkDir("/etc/fail2ban", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("/etc/fail2ban", path)
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(conf, rel), 0o755)
		case !strings.HasSuffix(rel, ".conf") || strings.HasPrefix(rel, "jail.d/") || strings.HasPrefix(rel, "fail2ban.d/"):
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(conf, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying /etc/fail2ban: %v", err)
	}
	for _, f := range []string{"filter.d/banpush.conf", "filter.d/banpush-quorum.conf", "action.d/banpush.conf", "jail.d/banpush.conf", "jail.d/banpush-quorum.conf"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "contrib", "fail2ban", f))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(conf, f), string(data))
	}
	writeTestFile(t, filepath.Join(tmp, "auth.log"), "")
	writeTestFile(t, filepath.Join(tmp, "received.log"), "")
	writeTestFile(t, filepath.Join(conf, "jail.d", "test.local"), strings.ReplaceAll(local, "$TMP", tmp))
	return conf
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// appendFile appends text to path, creating it (0640) if it is missing.
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestContribFail2banConfig: fail2ban accepts the contrib filter, action
// and receiving jail, with the action added to the sshd jail as its
// comments say, and reads them as intended.
func TestContribFail2banConfig(t *testing.T) {
	conf := f2bConfDir(t, `[DEFAULT]
ignoreip = 192.0.2.10 198.51.100.0/24

[sshd]
enabled = true
backend = polling
logpath = $TMP/auth.log
action = %(action_)s
         banpush[pushargs="--allow-private"]

[banpush]
logpath = $TMP/received.log

[banpush-quorum]
enabled = true
logpath = $TMP/received.log
`)
	out, err := exec.Command("fail2ban-client", "-c", conf, "-t").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: configuration test is successful") {
		t.Fatalf("fail2ban-client -t: %v\n%s", err, out)
	}

	// -d dumps the commands the client would send the server, one a line.
	dump, err := exec.Command("fail2ban-client", "-c", conf, "-d").Output()
	if err != nil {
		t.Fatalf("fail2ban-client -d: %v", err)
	}
	var sshdAction, banpushJail []string
	for _, line := range strings.Split(string(dump), "\n") {
		switch {
		case strings.HasPrefix(line, "['multi-set', 'sshd', 'action', 'banpush',"):
			sshdAction = append(sshdAction, line)
		case strings.HasPrefix(line, "['set', 'banpush', 'addaction',"),
			strings.HasPrefix(line, "['multi-set', 'banpush', 'action',"):
			banpushJail = append(banpushJail, line)
		}
	}
	if len(sshdAction) != 1 {
		t.Fatalf("got %d banpush actions on the sshd jail, want 1:\n%s", len(sshdAction), dump)
	}
	for _, want := range []string{
		`['actionban', '/usr/local/bin/banpush push --allow-private --jail "sshd" --time "<time>" --bantime "<bantime>" -- "<ip>"']`,
		`['norestored', True]`,
		`['actionunban', '']`,
		`['actionflush', 'true']`,
	} {
		if !strings.Contains(sshdAction[0], want) {
			t.Errorf("sshd's banpush action: got %s, want it to hold %s", sshdAction[0], want)
		}
	}
	for _, line := range banpushJail {
		if strings.Contains(line, "banpush push") || strings.Contains(line, "'addaction', 'banpush'") {
			t.Errorf("the receiving jail pushes what it receives: %s", line)
		}
	}
	if len(banpushJail) == 0 {
		t.Errorf("the receiving jail has no action:\n%s", dump)
	}
	for _, want := range []string{
		"['set', 'banpush', 'maxretry', 1]",
		"['set', 'banpush', 'usedns', 'no']",
		"['add', 'banpush', 'polling']",
		// The receiving jails take [DEFAULT]'s ignoreip, which 'banpush
		// peers ignoreip' fills with the fleet's addresses.
		"['set', 'banpush', 'addignoreip', '192.0.2.10', '198.51.100.0/24']",
		"['set', 'banpush-quorum', 'addignoreip', '192.0.2.10', '198.51.100.0/24']",
		"['set', 'banpush-quorum', 'maxretry', 1]",
		"['add', 'banpush-quorum', 'polling']",
	} {
		if !strings.Contains(string(dump), want) {
			t.Errorf("receiving jail: got no %s in the dump", want)
		}
	}
}
