package sshdtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestUser is the account that sshd logs tests in as, when they run as
// root in testenv's sandbox: a system account with /bin/sh and a home in
// /var/lib, as contrib/sshd/setup-receiver.sh makes the receiving account. A forced
// command runs through the account's login shell, and root's is bash,
// which under sshd reads root's ~/.bashrc: whatever the machine put there
// (seen: a pyenv init of 0.6 s per login) would be part of every delivery
// a test measures or waits for.
const TestUser = "banpush-test"

// Account is a login account.
type Account struct {
	Name     string
	UID, GID int
}

var login struct {
	once sync.Once
	acct Account
	err  error
}

// LoginAccount returns the account Start and StartMany log tests in as
// unless their Config names another: TestUser, made on first use, in
// testenv's sandbox (it vanishes with the sandbox); the user running the
// tests anywhere else.
func LoginAccount(t testing.TB) Account {
	t.Helper()
	login.once.Do(func() { login.acct, login.err = loginAccount() })
	if login.err != nil {
		t.Fatal(login.err)
	}
	return login.acct
}

func loginAccount() (Account, error) {
	name := ""
	if testenv.Sandboxed() && os.Geteuid() == 0 {
		name = TestUser
		if _, err := user.Lookup(name); err != nil {
			if out, err := exec.Command("useradd", "--system", "--create-home", "--home-dir", "/var/lib/"+name,
				"--shell", "/bin/sh", "--comment", "banpush tests' login", name).CombinedOutput(); err != nil {
				return Account{}, fmt.Errorf("sshdtest: useradd %s: %v: %s", name, err, out)
			}
			// '*', not '!': without PAM, sshd refuses a locked account.
			if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
				return Account{}, fmt.Errorf("sshdtest: usermod %s: %v: %s", name, err, out)
			}
		}
	}
	var u *user.User
	var err error
	if name == "" {
		u, err = user.Current()
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return Account{}, fmt.Errorf("sshdtest: login account: %w", err)
	}
	a := Account{Name: u.Username}
	a.UID, _ = strconv.Atoi(u.Uid)
	a.GID, _ = strconv.Atoi(u.Gid)
	return a, nil
}

// AccountDir makes a new directory under t.TempDir() that the login
// account owns and can reach, for what a receiver writes (its log and the
// files beside it). It is removed with t.TempDir().
func AccountDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "account")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	GiveAccount(t, dir)
	return dir
}

// GiveAccount makes the login account the owner of path, a directory or a
// file the test made under os.TempDir(), and lets it reach it (Reachable).
func GiveAccount(t testing.TB, path string) {
	t.Helper()
	a := LoginAccount(t)
	if err := os.Chown(path, a.UID, a.GID); err != nil {
		t.Fatal(err)
	}
	Reachable(t, path)
}

// Reachable lets every account through each directory from path's up to
// the temporary directory (chmod o+x), so that the login account can reach
// a file the test made there: a program to run, a log directory. Only
// directories under os.TempDir() are changed.
func Reachable(t testing.TB, path string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	dir := filepath.Clean(path)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	for strings.HasPrefix(dir, top+string(filepath.Separator)) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
		dir = filepath.Dir(dir)
	}
}
