package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestNotRoot: status and peers check, run by an account that cannot read
// root's inventory (0600) or spool (0700), say to run them as root, not to
// fix a file that is fine.
func TestNotRoot(t *testing.T) {
	testenv.Need(t, testenv.Root("makes a file that another account cannot read"))
	acct := sshdtest.LoginAccount(t)
	if acct.UID == 0 {
		t.Skip("no unprivileged account to run as outside the test sandbox")
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "peers")
	writeFile(t, inv, "Host web1\n    HostName 192.0.2.10\n")
	// This test binary is banpush under that name (TestMain), for the
	// account too.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "banpush")); err != nil {
		t.Fatal(err)
	}
	sshdtest.Reachable(t, exe)
	sshdtest.Reachable(t, inv)
	// An inventory the account may read, and root's spool (0700).
	open := filepath.Join(dir, "open")
	writeFile(t, open, "Host web1\n    HostName 192.0.2.10\n")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, inventory string
		args            []string
		code            int
	}{
		{"status", inv, []string{"status"}, exitConfig},
		{"peers check", inv, []string{"peers", "check"}, exitConfig},
		{"status of root's spool", open, []string{"status"}, exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, "banpush"), tt.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "BANPUSH_INVENTORY=" + tt.inventory, "BANPUSH_SPOOL=" + spool}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID)}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
				t.Errorf("exit %v, want %d\n%s", err, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "permission denied") || !strings.Contains(stderr.String(), "banpush: hint: run it as root") {
				t.Errorf("stderr:\n%s\nwant permission denied and the hint to run it as root", stderr.String())
			}
			if strings.Contains(stderr.String(), "fix the peers file") || strings.Contains(stderr.String(), "check --spool") {
				t.Errorf("stderr:\n%s\nwant no hint to fix the file", stderr.String())
			}
		})
	}
}
