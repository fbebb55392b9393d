//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/sys/unix"
)

// privateRoot moves the calling test's goroutine, and the OS thread it
// then keeps for good, into a mount namespace of its own where /etc, /var,
// /usr/local, /root and /home are overlays whose upper layers live in a
// tmpfs. Every account, file and directory the test and the processes it
// starts make there (os/exec forks from this thread) vanishes with the
// thread, which ends with the test's goroutine. Tests of the contrib
// scripts run them there as root, with the paths a real host has, without
// leaving anything for the other tests of the binary.
//
// Everything that needs that view must happen on the test's goroutine
// (subtests, and other goroutines, see the binary's usual view).
func privateRoot(t *testing.T) {
	t.Helper()
	testenv.Need(t, testenv.Root("mounts overlays in a mount namespace of its own"))
	if !testenv.Sandboxed() && !testenv.CI() {
		t.Skip("makes accounts and runs root's setup scripts: runs in the test sandbox (as root), or with CI set")
	}
	scratch := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread() // never unlocked: the thread ends with the test
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("making / private: %v", err)
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	var mounted []string
	for _, d := range []string{"etc", "var", "usr/local", "root", "home"} {
		if _, err := os.Stat("/" + d); err != nil {
			continue
		}
		up := filepath.Join(scratch, strings.ReplaceAll(d, "/", "-"))
		for _, sub := range []string{"up", "work"} {
			if err := os.MkdirAll(filepath.Join(up, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		opts := "lowerdir=/" + d + ",upperdir=" + filepath.Join(up, "up") + ",workdir=" + filepath.Join(up, "work")
		if err := unix.Mount("overlay", "/"+d, "overlay", 0, opts); err != nil {
			t.Fatalf("overlay on /%s: %v", d, err)
		}
		mounted = append(mounted, "/"+d)
	}
	// Mounting over a directory leaves this thread's working directory in
	// the one below: come back to it through the new mounts.
	if err := unix.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	// Before t.TempDir removes scratch: the append-only files the test
	// made lose the attribute, and the mounts go.
	t.Cleanup(func() {
		exec.Command("chattr", "-R", "-a", scratch).Run()
		for _, m := range mounted {
			unix.Unmount(m, unix.MNT_DETACH)
		}
		unix.Unmount(scratch, unix.MNT_DETACH)
	})
}

// run runs a command in the test's view, as root, and returns its output
// (stdout and stderr) and exit status.
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// mustRun runs a command as root and fails the test if it fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, code := run(t, nil, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// asAccount runs a shell command as the account, and returns its output and
// exit status: what a process of that account (a compromised receiver, a
// key without a forced command) can do.
func asAccount(t *testing.T, account, script string) (string, int) {
	t.Helper()
	uid, gid := accountIDs(t, account)
	home := strings.Split(strings.TrimSpace(mustRun(t, "getent", "passwd", account)), ":")[5]
	return run(t, []string{"HOME=" + home}, "setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--init-groups",
		"--", "/bin/sh", "-c", script)
}

// accountIDs reads the account's uid and gid with getent, in the test's
// view of /etc/passwd.
func accountIDs(t *testing.T, account string) (uid, gid int) {
	t.Helper()
	f := strings.Split(strings.TrimSpace(mustRun(t, "getent", "passwd", account)), ":")
	if len(f) < 7 {
		t.Fatalf("getent passwd %s: %q", account, f)
	}
	uid, _ = strconv.Atoi(f[2])
	gid, _ = strconv.Atoi(f[3])
	return uid, gid
}

// joinPrivateRoot returns a function that moves its caller's goroutine,
// and the OS thread it then keeps for good, into the test's private root:
// a goroutine that must see what the test's processes see (an attacker
// racing a script) calls it first. Call joinPrivateRoot on the test's
// goroutine, after privateRoot.
func joinPrivateRoot(t *testing.T) func() error {
	t.Helper()
	ns := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/mnt"
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return func() error {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return err
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			return err
		}
		return unix.Chdir(wd)
	}
}
