//go:build linux

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The contrib scripts that root runs on a receiving host, run as root in a
// private root (privateRoot) with the real paths: the receiving account
// banpush, /var/lib/banpush, /var/log/banpush. In each test the account
// first plants what a compromised receiver could, then root runs the
// script again, as contrib/fleet/setup-host.sh does on every run and the
// package on every upgrade. Root must never create, chown, chmod, read or
// write anything through what the account made.

var contribDir = filepath.Join("..", "..", "contrib")

// installBinary puts the banpush under test where contrib's files name it.
func installBinary(t *testing.T, dst string) {
	t.Helper()
	mustRun(t, "install", "-D", "-m", "0755", builtBanpush(t), dst)
}

// rootDir makes a directory of root's, mode 0755, for a link of the
// account's to point at: /usr/local/bin or /etc/apt/apt.conf.d on a real
// host.
func rootDir(t *testing.T, path string) {
	t.Helper()
	mustRun(t, "install", "-d", "-m", "0755", "-o", "root", "-g", "root", path)
}

// assertRootDir fails if the directory is no longer root's with mode 0755,
// or holds a file named name.
func assertRootDir(t *testing.T, path, name string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode() != os.ModeDir|0o755 {
		t.Errorf("%s: got %v owned by uid %d; want root's, drwxr-xr-x, as before the run", path, fi.Mode(), st.Uid)
	}
	if _, err := os.Lstat(filepath.Join(path, name)); err == nil {
		t.Errorf("%s/%s: root made it through the account's link", path, name)
	}
}

// assertAppendOnlyLog fails unless the log is what setup-account makes: a
// regular file of the account's, mode 0640, append-only, in a directory of
// root's that the account's group may add files to (sticky).
func assertAppendOnlyLog(t *testing.T, log string, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(log)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); !fi.Mode().IsRegular() || int(st.Uid) != uid || fi.Mode().Perm() != 0o640 {
		t.Errorf("%s: got %v owned by uid %d; want a regular file of uid %d, mode 0640", log, fi.Mode(), st.Uid, uid)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ao, err := fsutil.AppendOnly(f); err != nil || !ao {
		t.Errorf("%s: append-only %v (%v); want it append-only", log, ao, err)
	}
	di, err := os.Lstat(filepath.Dir(log))
	if err != nil {
		t.Fatal(err)
	}
	if st := di.Sys().(*syscall.Stat_t); st.Uid != 0 || int(st.Gid) != gid || di.Mode() != os.ModeDir|os.ModeSticky|0o771 {
		t.Errorf("%s: got %v owned by %d:%d; want root's, group %d, drwxrwx--t", filepath.Dir(log), di.Mode(), st.Uid, st.Gid, gid)
	}
}

// TestSetupReceiverLinks (issue 25, finding 1): the account links ~/.ssh
// to /usr/local/bin and its received log to a file it would like root to
// make; setup-receiver.sh, run again, must neither give /usr/local/bin to
// the account nor make a file through either link.
func TestSetupReceiverLinks(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, testenv.Command("setpriv", "util-linux"), testenv.Command("useradd", "passwd"))
	privateRoot(t)
	installBinary(t, "/usr/local/bin/banpush")
	script := filepath.Join(contribDir, "sshd", "setup-receiver.sh")
	mustRun(t, "sh", script)
	uid, gid := accountIDs(t, "banpush")
	const planted = "/etc/cron.d/banpush-planted" // the file the account wants root to make
	rootDir(t, "/etc/cron.d")
	assertAppendOnlyLog(t, "/var/log/banpush/received.log", uid, gid)

	// What a compromised receiver can do in its home and log directory
	// (some of it fails where the account cannot; that is the point).
	if out, code := asAccount(t, "banpush", `rm -rf ~/.ssh && ln -s /usr/local/bin ~/.ssh`); code != 0 {
		t.Fatalf("the account could not replace its own ~/.ssh: %s", out)
	}
	out, _ := asAccount(t, "banpush", `cd /var/log/banpush && rm -f received.log; ln -s `+planted+` received.log`)
	t.Logf("the account's link in the log directory: %s", out)

	out, code := run(t, nil, "sh", script)
	t.Logf("setup-receiver.sh, again: exit %d\n%s", code, out)
	assertRootDir(t, "/usr/local/bin", "authorized_keys")
	if _, err := os.Lstat(planted); err == nil {
		t.Errorf("%s: root made it through the account's link in the log directory", planted)
	}
	if code == 0 || !strings.Contains(out, ".ssh: is a symbolic link") {
		t.Errorf("setup-receiver.sh: exit %d; want it to refuse the link ~/.ssh, and say so", code)
	}
	assertAppendOnlyLog(t, "/var/log/banpush/received.log", uid, gid)
}

// TestPreinstLinks (issue 25, finding 2): on an upgrade, the package's
// preinst must not make authorized_keys through a link the account put in
// place of ~/.ssh (to /etc/apt/apt.conf.d, whose files root's apt runs),
// and postinst's setup-account must refuse the link.
func TestPreinstLinks(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, testenv.Command("setpriv", "util-linux"), testenv.Command("useradd", "passwd"))
	privateRoot(t)
	scripts := filepath.Join(contribDir, "packaging", "scripts")
	mustRun(t, "sh", filepath.Join(scripts, "preinst.sh"), "install")
	// postinst runs the package's banpush from PATH (dpkg's): here, the
	// binary under test where the private root lets the test put it.
	installBinary(t, "/usr/local/bin/banpush")
	postinst := filepath.Join(scripts, "postinst.sh")
	path := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if out, code := run(t, path, "sh", postinst, "configure"); code != 0 {
		t.Fatalf("postinst configure: exit %d\n%s", code, out)
	}
	uid, gid := accountIDs(t, "banpush")
	assertAppendOnlyLog(t, "/var/log/banpush/received.log", uid, gid)
	if _, err := os.Stat("/var/lib/banpush/.ssh/authorized_keys"); err != nil {
		t.Fatalf("after install and configure: %v", err)
	}

	const target = "/etc/apt/apt.conf.d"
	rootDir(t, target)
	if out, code := asAccount(t, "banpush", `rm -rf ~/.ssh && ln -s `+target+` ~/.ssh`); code != 0 {
		t.Fatalf("the account could not replace its own ~/.ssh: %s", out)
	}
	out, code := run(t, nil, "sh", filepath.Join(scripts, "preinst.sh"), "upgrade", "1.0.0")
	t.Logf("preinst upgrade: exit %d\n%s", code, out)
	assertRootDir(t, target, "authorized_keys")
	out, code = run(t, path, "sh", postinst, "configure", "1.0.0")
	t.Logf("postinst configure: exit %d\n%s", code, out)
	assertRootDir(t, target, "authorized_keys")
	if !strings.Contains(out, ".ssh: is a symbolic link") {
		t.Errorf("postinst: no word of the link ~/.ssh in its output")
	}
}

// TestPreinstModes (issue 26, item 14): a spool or /etc/banpush made
// before the package (by a source install, or by hand with mkdir's 0755)
// is made 0700 by the package's preinst, on install and on upgrade: its
// mode stayed 0755, and doctor warned.
func TestPreinstModes(t *testing.T) {
	testenv.Need(t, testenv.Command("useradd", "passwd"))
	privateRoot(t)
	preinst := filepath.Join(contribDir, "packaging", "scripts", "preinst.sh")
	dirs := []string{"/var/spool/banpush", "/etc/banpush"}
	for _, args := range [][]string{{"install"}, {"upgrade", "1.0.0"}} {
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mustRun(t, "sh", append([]string{preinst}, args...)...)
		for _, d := range dirs {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("preinst %s: %s: got mode %04o, want 0700", args[0], d, got)
			}
		}
	}
}

// TestReceivedLogAppendOnly (issue 25, finding 4): on a host set up by
// setup-receiver.sh, the account can append to its received log, as the
// receiver does, and nothing else: no truncate -s +1G (a sparse file whose
// one line took fail2ban-server from 22 MB to 3.1 GB), no write past the
// end, no truncation, no replacing, renaming or chmod of the log.
func TestReceivedLogAppendOnly(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, testenv.Command("setpriv", "util-linux"), testenv.Command("useradd", "passwd"),
		testenv.Command("truncate", "coreutils"), testenv.Command("dd", "coreutils"))
	privateRoot(t)
	installBinary(t, "/usr/local/bin/banpush")
	mustRun(t, "sh", filepath.Join(contribDir, "sshd", "setup-receiver.sh"))
	const log = "/var/log/banpush/received.log"
	uid, gid := accountIDs(t, "banpush")
	assertAppendOnlyLog(t, log, uid, gid)

	receiveAs(t, "banpush", log, "203.0.113.9")
	before, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(before), " 203.0.113.9 ") {
		t.Fatalf("the receiver, as the account, did not append: %q, %v", before, err)
	}
	for _, attack := range []struct{ name, script string }{
		{"truncate -s +1G", "truncate -s +1G " + log},
		{"write past the end", "dd if=/dev/zero of=" + log + " bs=1 count=1 seek=1073741824 conv=notrunc"},
		{"truncate to nothing", ": >" + log},
		{"remove", "rm -f " + log},
		{"rename", "mv " + log + " " + log + ".x"},
		{"replace", "echo junk >/var/log/banpush/new && mv -f /var/log/banpush/new " + log},
		{"chmod", "chmod 0666 " + log},
		{"hard link", "ln " + log + " /var/log/banpush/link"},
	} {
		out, code := asAccount(t, "banpush", attack.script)
		if code == 0 {
			t.Errorf("%s: the account could (%s)", attack.name, strings.TrimSpace(out))
		}
	}
	after, err := os.ReadFile(log)
	if err != nil || string(after) != string(before) {
		t.Errorf("the log changed under the attacks: %d bytes, %v; want the %d bytes before", len(after), err, len(before))
	}
	// Appending is what the account may do; the next batch lands.
	receiveAs(t, "banpush", log, "203.0.113.10")
	if b, _ := os.ReadFile(log); !strings.HasPrefix(string(b), string(before)) || !strings.Contains(string(b), " 203.0.113.10 ") {
		t.Errorf("after the attacks, the receiver did not append: %q", b)
	}
	// Its state files live beside the log, the account's.
	if fi, err := os.Lstat(log + ".state"); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("%s.state: %v; want a file of the account's", log, err)
	}
	assertAppendOnlyLog(t, log, uid, gid)
}

// receiveAs runs the receiver as the account, as sshd's forced command
// would, with a ban of addr, and fails the test unless it accepts it.
func receiveAs(t *testing.T, account, log, addr string) {
	t.Helper()
	out, code := requestAs(t, account, log, "ban", addr)
	if code != 0 || !strings.Contains(out, "accepted=1") {
		t.Fatalf("receive %s as %s: exit %d\n%s", addr, account, code, out)
	}
}

// requestAs runs the receiver as the account, as sshd would for a
// request (ban, ping, ...) with input on its stdin, and returns its
// output and exit status.
func requestAs(t *testing.T, account, log, request, input string) (string, int) {
	t.Helper()
	uid, gid := accountIDs(t, account)
	cmd := "printf '%s\\n' '" + input + "' | SSH_ORIGINAL_COMMAND='banpush-v1 " + request + "' SSH_CONNECTION='198.51.100.99 40000 192.0.2.1 22' " +
		"/usr/local/bin/banpush receive --peer web1 --log " + log
	return run(t, nil, "setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--init-groups", "--", "/bin/sh", "-c", cmd)
}

// TestContribSetupAccountLines: every 'banpush setup-account' command line
// in contrib's scripts and logrotate file parses with banpush's own command
// line, with the shell's variables in it given plain values: a renamed flag
// fails here, not at the next rotation or upgrade.
func TestContribSetupAccountLines(t *testing.T) {
	files := []string{
		"logrotate.d/banpush", "sshd/setup-receiver.sh", "packaging/scripts/postinst.sh",
	}
	vars := strings.NewReplacer(`"$1"`, "/var/log/banpush/received.log", `"$user"`, "banpush",
		`"$logdir/received.log"`, "/var/log/banpush/received.log", `"$bin"`, "/usr/local/bin/banpush")
	lines := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(contribDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			_, cmd, ok := strings.Cut(l, " setup-account")
			if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") || strings.Contains(l, "echo ") {
				continue
			}
			cmd, _, _ = strings.Cut(cmd, ";")
			args := append([]string{"setup-account"}, strings.Fields(vars.Replace(cmd))...)
			if i := slices.Index(args, "then"); i >= 0 {
				args = args[:i]
			}
			if cli, sel := parseArgs(t, args); sel != "setup-account" || !filepath.IsAbs(cli.SetupAccount.Log) {
				t.Errorf("contrib/%s: %q selects %q with --log %q", f, l, sel, cli.SetupAccount.Log)
			}
			lines++
		}
	}
	if lines < 4 {
		t.Errorf("found %d setup-account lines in %v, want at least 4", lines, files)
	}
}

// TestSetupAccountErrors: what setup-account says, and exits with, when it
// cannot start.
func TestSetupAccountErrors(t *testing.T) {
	testenv.Need(t, testenv.Root("setup-account checks for root first"))
	log := filepath.Join(t.TempDir(), "log", "received.log")
	for _, tt := range []struct {
		name      string
		args      []string
		code      int
		err, hint string
	}{
		{"no such account", []string{"--account", "no-such-account"}, exitFailure, "no account no-such-account", "make it first, as contrib/sshd/setup-receiver.sh does"},
		{"the account is root", []string{"--account", "root"}, exitUsage, "the account root is root", "the receiving account is an unprivileged account of its own"},
		{"no such group", []string{"--account", "nobody", "--log-group", "no-such-group"}, exitUsage, "--log-group no-such-group", "give a group that exists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			code := Main(append([]string{"setup-account", "--log", log}, tt.args...), &Env{Stdout: &stderr, Stderr: &stderr, Getenv: os.Getenv})
			if code != tt.code || !strings.Contains(stderr.String(), "banpush: error: "+tt.err) || !strings.Contains(stderr.String(), "banpush: hint: "+tt.hint) {
				t.Errorf("exit %d\n%s\nwant exit %d, error %q, hint %q", code, stderr.String(), tt.code, tt.err, tt.hint)
			}
			if _, err := os.Lstat(filepath.Dir(log)); err == nil {
				t.Errorf("%s: made, want nothing made", filepath.Dir(log))
			}
		})
	}
}

// TestContribFail2banDropIn: the bound on fail2ban's memory is a drop-in
// that systemd accepts for fail2ban's own unit, with nothing in it that
// systemd would ignore.
func TestContribFail2banDropIn(t *testing.T) {
	dropIn := filepath.Join(contribDir, "systemd", "fail2ban.service.d", "banpush.conf")
	b, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\n[Service]\nMemoryMax=") {
		t.Errorf("%s: no MemoryMax in a [Service] section", dropIn)
	}
	testenv.Need(t, testenv.Command("systemd-analyze", "systemd"), testenv.Command("fail2ban-server", "fail2ban"))
	unit := "/lib/systemd/system/fail2ban.service" // Debian's fail2ban package ships it
	if _, err := os.Stat(unit); err != nil {
		t.Skipf("no fail2ban unit to verify the drop-in against: %v", err)
	}
	dir := t.TempDir()
	mustRun(t, "install", "-D", "-m", "0644", unit, filepath.Join(dir, "fail2ban.service"))
	mustRun(t, "install", "-D", "-m", "0644", dropIn, filepath.Join(dir, "fail2ban.service.d", "banpush.conf"))
	out, code := run(t, []string{"SYSTEMD_UNIT_PATH=" + dir + ":"}, "systemd-analyze", "verify", filepath.Join(dir, "fail2ban.service"))
	if code != 0 || strings.Contains(out, "banpush.conf") {
		t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
	}
}
