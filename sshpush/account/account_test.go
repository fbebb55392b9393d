package account

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The account in these tests is nobody (65534), its group nogroup
// (65534); the log's group is 4 (adm). Root runs Setup*, as it does on a
// host; the directories the account controls belong to nobody.
const (
	nobody = 65534
	adm    = 4
)

// root makes a directory of root's, mode 0755, for the account's home and
// log directory to live in, and clears the append-only attributes under it
// before t.TempDir removes it.
func root(t *testing.T) string {
	t.Helper()
	testenv.Need(t, testenv.Root("gives files to another account"))
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("chattr", "-R", "-a", dir).Run() })
	return dir
}

func testAccount(dir string) Account {
	return Account{Name: "banpush", UID: nobody, GID: nobody, Home: filepath.Join(dir, "home")}
}

func testLog(dir string) Log {
	return Log{Path: filepath.Join(dir, "log", "received.log"), Account: testAccount(dir), GID: adm,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
}

// want fails unless path is what it says: its type and permission bits,
// its owner and group.
func want(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: got %v %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func appendOnly(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ao, err := fsutil.AppendOnly(f)
	if err != nil {
		t.Fatal(err)
	}
	return ao
}

func chown(t *testing.T, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetupHome(t *testing.T) {
	dir := root(t)
	a := testAccount(dir)
	var r Report
	if err := SetupHome(a, &r); err != nil {
		t.Fatal(err)
	}
	want(t, a.Home, os.ModeDir|0o750, nobody, nobody)
	want(t, a.Home+"/.ssh", os.ModeDir|0o700, nobody, nobody)
	want(t, a.Home+"/.ssh/authorized_keys", 0o600, nobody, nobody)
	if len(r.Notes) != 3 {
		t.Errorf("notes %q, want three: the home, ~/.ssh, authorized_keys", r.Notes)
	}

	// Again: nothing to do; an administrator's lines stay.
	if err := os.WriteFile(a.Home+"/.ssh/authorized_keys", []byte("# admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = Report{}
	if err := SetupHome(a, &r); err != nil || len(r.Notes) != 0 {
		t.Errorf("second run: %v, notes %q; want nothing done", err, r.Notes)
	}
	if b, _ := os.ReadFile(a.Home + "/.ssh/authorized_keys"); string(b) != "# admin\n" {
		t.Errorf("authorized_keys: got %q, want it kept", b)
	}

	// A ~/.ssh that others may read, or root's: the account's, 0700.
	if err := os.Chmod(a.Home+"/.ssh", 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, 0, a.Home+"/.ssh")
	r = Report{}
	if err := SetupHome(a, &r); err != nil {
		t.Fatal(err)
	}
	want(t, a.Home+"/.ssh", os.ModeDir|0o700, nobody, nobody)
}

// TestSetupHomeRefusesLinks: what the account may put in its home is
// never followed, and nothing of root's changes.
func TestSetupHomeRefusesLinks(t *testing.T) {
	for _, tt := range []struct {
		name  string
		plant func(t *testing.T, home, target string)
	}{
		{"~/.ssh is a link", func(t *testing.T, home, target string) {
			os.RemoveAll(home + "/.ssh")
			if err := os.Symlink(target, home+"/.ssh"); err != nil {
				t.Fatal(err)
			}
		}},
		{"authorized_keys is a link", func(t *testing.T, home, target string) {
			os.Remove(home + "/.ssh/authorized_keys")
			if err := os.Symlink(target+"/authorized_keys", home+"/.ssh/authorized_keys"); err != nil {
				t.Fatal(err)
			}
		}},
		{"authorized_keys is a second name", func(t *testing.T, home, target string) {
			os.Remove(home + "/.ssh/authorized_keys")
			if err := os.WriteFile(target+"/secret", []byte("root's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(target+"/secret", home+"/.ssh/authorized_keys"); err != nil {
				t.Skipf("no hard link here: %v", err)
			}
		}},
		{"authorized_keys is a FIFO", func(t *testing.T, home, target string) {
			os.Remove(home + "/.ssh/authorized_keys")
			if err := syscall.Mkfifo(home+"/.ssh/authorized_keys", 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := root(t)
			a := testAccount(dir)
			if err := SetupHome(a, &Report{}); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "usr-local-bin") // root's
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, a.Home, target)
			err := SetupHome(a, &Report{})
			if err == nil {
				t.Fatal("SetupHome accepted it")
			}
			t.Logf("refused: %v", err)
			want(t, target, os.ModeDir|0o755, 0, 0)
			if _, err := os.Lstat(target + "/authorized_keys"); err == nil {
				t.Errorf("made authorized_keys in root's directory")
			}
		})
	}
}

func TestSetupHomeOtherOwner(t *testing.T) {
	dir := root(t)
	a := testAccount(dir)
	if err := os.Mkdir(a.Home, 0o750); err != nil {
		t.Fatal(err)
	}
	chown(t, 1234, a.Home)
	if err := SetupHome(a, &Report{}); err == nil || !strings.Contains(err.Error(), "uid 1234") {
		t.Errorf("a home of uid 1234: %v, want a refusal that names it", err)
	}
}

// TestSetupLog: a new log, and a host of an earlier version, whose log
// directory and log were the account's.
func TestSetupLog(t *testing.T) {
	t.Run("new", func(t *testing.T) {
		dir := root(t)
		l := testLog(dir)
		var r Report
		if err := SetupLog(l, &r); err != nil {
			t.Fatal(err)
		}
		want(t, filepath.Dir(l.Path), os.ModeDir|os.ModeSticky|0o771, 0, nobody)
		want(t, l.Path, 0o640, nobody, adm)
		if !appendOnly(t, l.Path) {
			t.Error("the log is not append-only")
		}
		r = Report{}
		if err := SetupLog(l, &r); err != nil || len(r.Notes)+len(r.Warnings) != 0 {
			t.Errorf("second run: %v, %q %q; want nothing done", err, r.Notes, r.Warnings)
		}
	})

	t.Run("earlier version", func(t *testing.T) {
		dir := root(t)
		l := testLog(dir)
		logDir := filepath.Dir(l.Path)
		if err := os.Mkdir(logDir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"received.log": "old line\n", "received.log.state": "web1 1 2\n", "received.log.1": "older\n"} {
			if err := os.WriteFile(filepath.Join(logDir, name), []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		chown(t, nobody, logDir, l.Path, l.Path+".state", l.Path+".1")
		// A descriptor the account opened before, that writes anywhere.
		stashed, err := os.OpenFile(l.Path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer stashed.Close()

		var r Report
		if err := SetupLog(l, &r); err != nil {
			t.Fatal(err)
		}
		t.Logf("notes: %q", r.Notes)
		want(t, logDir, os.ModeDir|os.ModeSticky|0o771, 0, nobody)
		want(t, l.Path, 0o640, nobody, adm)
		if !appendOnly(t, l.Path) {
			t.Error("the log is not append-only")
		}
		aside := l.Path + ".replaced-20260102T030405Z"
		if b, err := os.ReadFile(aside); err != nil || string(b) != "old line\n" {
			t.Errorf("the old log, moved aside: %q, %v", b, err)
		}
		want(t, aside, 0o640, 0, adm)
		want(t, l.Path+".1", 0o640, 0, adm)
		want(t, l.Path+".state", 0o640, nobody, nobody) // the receiver's, as it was

		// The stashed descriptor reaches the old file, not the log.
		if _, err := stashed.WriteAt([]byte("x"), 1<<30); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(l.Path); fi.Size() != 0 {
			t.Errorf("the new log has %d bytes, want none", fi.Size())
		}
	})

	t.Run("links in the directory", func(t *testing.T) {
		dir := root(t)
		l := testLog(dir)
		logDir := filepath.Dir(l.Path)
		if err := os.Mkdir(logDir, 0o750); err != nil {
			t.Fatal(err)
		}
		chown(t, nobody, logDir)
		secret := filepath.Join(dir, "shadow")
		if err := os.WriteFile(secret, []byte("root's\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		planted := filepath.Join(dir, "planted")
		for name, target := range map[string]string{"received.log": planted, "received.log.1": secret, "received.log.2.gz": secret} {
			if err := os.Symlink(target, filepath.Join(logDir, name)); err != nil {
				t.Fatal(err)
			}
		}
		var r Report
		if err := SetupLog(l, &r); err != nil {
			t.Fatal(err)
		}
		want(t, l.Path, 0o640, nobody, adm)
		want(t, secret, 0o600, 0, 0)
		if _, err := os.Lstat(planted); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; root made it through the account's link", planted, err)
		}
		for _, name := range []string{"received.log.1", "received.log.2.gz"} {
			if _, err := os.Lstat(filepath.Join(logDir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %v; want the link gone", name, err)
			}
		}
	})

	t.Run("log directory in the account's", func(t *testing.T) {
		dir := root(t)
		parent := filepath.Join(dir, "var-log")
		if err := os.Mkdir(parent, 0o755); err != nil {
			t.Fatal(err)
		}
		chown(t, nobody, parent)
		target := filepath.Join(dir, "etc")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(parent, "banpush")); err != nil {
			t.Fatal(err)
		}
		l := testLog(dir)
		l.Path = filepath.Join(parent, "banpush", "received.log")
		if err := SetupLog(l, &Report{}); err == nil {
			t.Error("SetupLog worked in a directory the account can change")
		}
		want(t, target, os.ModeDir|0o755, 0, 0)
	})

	t.Run("parent writable by another group", func(t *testing.T) {
		// Ubuntu's /var/log: root:syslog 0775.
		dir := root(t)
		if err := os.Chown(dir, 0, 104); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o775); err != nil {
			t.Fatal(err)
		}
		l := testLog(dir)
		if err := SetupLog(l, &Report{}); err != nil {
			t.Fatal(err)
		}
		want(t, l.Path, 0o640, nobody, adm)
		// The same, writable by the account's group: refused.
		if err := os.Chown(dir, 0, nobody); err != nil {
			t.Fatal(err)
		}
		if err := SetupLog(l, &Report{}); err == nil {
			t.Error("SetupLog worked in a directory the account's group may change")
		}
	})

	t.Run("log directory is root's link", func(t *testing.T) {
		dir := root(t)
		l := testLog(dir)
		target := filepath.Join(dir, "srv-log")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Dir(l.Path)); err != nil {
			t.Fatal(err)
		}
		if err := SetupLog(l, &Report{}); err != nil {
			t.Fatal(err)
		}
		want(t, filepath.Join(target, "received.log"), 0o640, nobody, adm)
	})
}

// TestRotation: BeginRotation closes the directory and lifts the
// attribute; a rename (logrotate's) and SetupLog make the new log.
func TestRotation(t *testing.T) {
	dir := root(t)
	l := testLog(dir)
	if err := SetupLog(l, &Report{}); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Dir(l.Path)
	if err := os.Rename(l.Path, l.Path+".1"); err == nil {
		t.Fatal("renamed an append-only log")
	}
	if err := BeginRotation(l, &Report{}); err != nil {
		t.Fatal(err)
	}
	want(t, logDir, os.ModeDir|os.ModeSticky|0o700, 0, nobody)
	if appendOnly(t, l.Path) {
		t.Error("still append-only")
	}
	if err := os.Rename(l.Path, l.Path+".1"); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := SetupLog(l, &r); err != nil {
		t.Fatal(err)
	}
	want(t, logDir, os.ModeDir|os.ModeSticky|0o771, 0, nobody)
	want(t, l.Path, 0o640, nobody, adm)
	want(t, l.Path+".1", 0o640, 0, adm)
	if !appendOnly(t, l.Path) {
		t.Error("the new log is not append-only")
	}

	// With nothing to rotate, BeginRotation leaves the directory open.
	if err := os.Remove(l.Path + ".1"); err != nil {
		t.Fatal(err)
	}
	exec.Command("chattr", "-a", l.Path).Run()
	if err := os.Remove(l.Path); err != nil {
		t.Fatal(err)
	}
	if err := BeginRotation(l, &Report{}); err == nil {
		t.Error("BeginRotation without a log: no error")
	}
	want(t, logDir, os.ModeDir|os.ModeSticky|0o771, 0, nobody)
}
