//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/sys/unix"
)

// TestSetupHostDropOtherCAsRace (issue 25, finding 3): setup-host.sh
// --drop-other-cas removes the line of an old user CA from the account's
// authorized_keys. The account can make it do so whenever it likes (it
// plants such a line in its own file), and races it: the moment root makes
// a temporary file in ~/.ssh, the account puts a link to a file of its
// choosing in its place, hoping that root then writes the new
// authorized_keys through it (into /etc/apt/apt.conf.d, whose files apt
// runs as root). The account's racer here reacts through inotify, as fast
// as an attacker's would; it aims first at the names mktemp makes, then at
// any temporary file root makes there. Each way, three runs: root must
// never make the file.
func TestSetupHostDropOtherCAsRace(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, append(testenv.OpenSSH(),
		testenv.Command("fail2ban-client", "fail2ban"),
		testenv.Command("setpriv", "util-linux"),
		testenv.Command("useradd", "passwd"))...)
	privateRoot(t)
	installBinary(t, "/usr/local/bin/banpush")
	fleet := newFleetDir(t)
	// The host: sshd's keys and privilege separation directory, and a
	// fail2ban whose sshd jail polls a log that exists.
	mustRun(t, "ssh-keygen", "-q", "-A")
	mustRun(t, "mkdir", "-p", "/run/sshd")
	mustRun(t, "sh", "-c", `rm -f /etc/fail2ban/jail.d/* /etc/fail2ban/*.local && printf '[sshd]\nenabled = true\nbackend = polling\n' >/etc/fail2ban/jail.d/sshd-test.local && touch /var/log/auth.log`)
	script := filepath.Join(fleet, "contrib", "fleet", "setup-host.sh")
	if out, code := run(t, nil, "sh", script, "--fleet", fleet); code != 0 {
		t.Fatalf("setup-host.sh, first run: exit %d\n%s", code, out)
	}
	const ak = "/var/lib/banpush/.ssh/authorized_keys"
	good, err := os.ReadFile(ak)
	if err != nil || !bytes.Contains(good, []byte("cert-authority")) {
		t.Fatalf("%s after the first run: %q, %v", ak, good, err)
	}
	// The old CA's line, as the account can write it into its own file.
	other := filepath.Join(t.TempDir(), "old_ca")
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
	oldLine := strings.TrimSpace(mustRun(t, "/usr/local/bin/banpush", "authorize", "--cert-authority", other+".pub", "--log", "/var/log/banpush/received.log"))
	planted := filepath.Join(t.TempDir(), "old_line")
	writeTestFile(t, planted, oldLine+"\n")
	mustRun(t, "chmod", "0644", planted)
	mustRun(t, "chmod", "0755", filepath.Dir(planted))

	const target = "/etc/apt/apt.conf.d/99banpush-planted"
	rootDir(t, filepath.Dir(target))
	uid, gid := accountIDs(t, "banpush")
	enter := joinPrivateRoot(t)
	for _, aim := range []struct {
		name string
		re   *regexp.Regexp
	}{
		{"mktemp's names", regexp.MustCompile(`^\.authorized_keys\.[A-Za-z0-9]{6}$`)},
		{"any temporary file", regexp.MustCompile(`^\.authorized_keys\..`)},
	} {
		for i := range 3 {
			// The account's own file, with the old CA's line in its
			// banpush block (after a run that left a link there, the
			// account's file again).
			os.Remove(ak)
			writeTestFile(t, ak, strings.Replace(string(good), "# END banpush", oldLine+"\n# END banpush", 1))
			mustRun(t, "chown", itoaPair(uid, gid), ak)
			mustRun(t, "chmod", "0600", ak)

			won := make(chan string, 1)
			stop := make(chan struct{})
			ready := make(chan error, 1)
			go raceTempFiles(enter, filepath.Dir(ak), aim.re, target, ready, stop, won)
			if err := <-ready; err != nil {
				t.Fatalf("the racer: %v", err)
			}
			out, code := run(t, nil, "sh", script, "--fleet", fleet, "--drop-other-cas")
			close(stop)
			swapped := <-won
			t.Logf("%s, run %d: the racer swapped %q; setup-host.sh exit %d", aim.name, i+1, swapped, code)
			if _, err := os.Lstat(target); err == nil {
				b, _ := os.ReadFile(target)
				t.Errorf("%s, run %d: root wrote %s through the account's link (%d bytes)\n%s", aim.name, i+1, target, len(b), out)
				os.Remove(target)
			}
			if code == 0 && swapped == "" {
				if b, _ := os.ReadFile(ak); bytes.Contains(b, []byte(oldLine)) {
					t.Errorf("%s, run %d: setup-host.sh --drop-other-cas left the old CA's line\n%s", aim.name, i+1, out)
				}
			}
		}
	}
}

// raceTempFiles plays the account: it watches dir, and the first time a
// file whose name re matches appears there, it replaces it with a link to
// target. It reports on ready once it watches, and on won the name it
// swapped ("" if none) once stop is closed.
func raceTempFiles(enter func() error, dir string, re *regexp.Regexp, target string, ready chan<- error, stop <-chan struct{}, won chan<- string) {
	swapped := ""
	defer func() { won <- swapped }()
	if err := enter(); err != nil {
		ready <- err
		return
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		ready <- err
		return
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		ready <- err
		return
	}
	ready <- nil
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-stop:
			return
		default:
		}
		// Wake as soon as an event is there, and look at stop now and then.
		if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10); err != nil || n == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if swapped != "" || !re.MatchString(name) {
				continue
			}
			p := filepath.Join(dir, name)
			if os.Remove(p) == nil && os.Symlink(target, p) == nil {
				swapped = name
			}
		}
	}
}

func itoaPair(uid, gid int) string {
	return strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
}

// newFleetDir makes what the README's CA machine hands a host: the CAs'
// public keys, the inventory, the known_hosts line, an empty KRL and a copy
// of contrib/.
func newFleetDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca := t.TempDir()
	fleet := filepath.Join(dir, "fleet")
	mustRun(t, "mkdir", "-p", fleet)
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banpush-user-ca", "-f", filepath.Join(ca, "user_ca"))
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banpush-host-ca", "-f", filepath.Join(ca, "host_ca"))
	mustRun(t, "cp", "-r", contribDir, filepath.Join(ca, "user_ca.pub"), filepath.Join(ca, "host_ca.pub"), fleet+"/")
	hostCA, err := os.ReadFile(filepath.Join(ca, "host_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(fleet, "known_hosts"), "@cert-authority * "+string(hostCA))
	mustRun(t, "ssh-keygen", "-q", "-k", "-f", filepath.Join(fleet, "banpush_revoked.krl"))
	writeTestFile(t, filepath.Join(fleet, "peers"), "Host h1\n    HostName 192.0.2.11\n\nHost h2\n    HostName 192.0.2.12\n\n"+
		"Host *\n    User banpush\n    IdentityFile /etc/banpush/id_ed25519\n    UserKnownHostsFile /etc/banpush/known_hosts\n")
	return fleet
}
