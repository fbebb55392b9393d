package authkeys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The receiving account owns its home and ~/.ssh, and root runs
// 'banpush authorize --install' there. These tests play that account: its
// directories belong to nobody (uid 65534) when the tests run as root, and
// to the user running them otherwise; InstallFile trusts links only in
// directories of root's that nobody else may write.

const nobody = 65534

// lineFor is an authorized_keys line of peer, as Line writes it.
func lineFor(t *testing.T, peer string) string {
	t.Helper()
	l, _, err := Line(Spec{Binary: "/usr/bin/banpush", Args: []string{"receive", "--peer", peer, "--log", "/var/log/b.log"}, Peer: peer, KeyFile: []byte(pub)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// secretFile is a file of root's that the account must never get a copy of.
func secretFile(t *testing.T) (path, secret string) {
	t.Helper()
	secret = "root-only-secret-7f3a"
	path = filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// assertNoCopy fails if secret appears in any file under dir.
func assertNoCopy(t *testing.T, dir, secret string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), secret) {
				t.Errorf("%s holds a copy of the secret file", p)
			}
		}
		return nil
	})
}

func newHome(t *testing.T) (home, ak string) {
	t.Helper()
	home = t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	ak = filepath.Join(home, ".ssh", "authorized_keys")
	if err := os.WriteFile(ak, []byte("# admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{home, filepath.Join(home, ".ssh"), ak} {
			if err := os.Chown(p, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}
	}
	return home, ak
}

func TestInstallFile(t *testing.T) {
	_, ak := newHome(t)
	replaced, err := InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1"))
	if err != nil || replaced {
		t.Fatalf("first install: %v, replaced %v", err, replaced)
	}
	replaced, err = InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1"))
	if err != nil || !replaced {
		t.Fatalf("second install: %v, replaced %v", err, replaced)
	}
	b, _ := os.ReadFile(ak)
	fi, _ := os.Stat(ak)
	if !strings.HasPrefix(string(b), "# admin\n"+BeginMarker) || fi.Mode().Perm() != 0o600 {
		t.Errorf("file %q mode %v", b, fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(ak)); len(ents) != 1 {
		t.Errorf("%d entries in .ssh, want the file alone", len(ents))
	}
	if _, err := InstallFile(filepath.Join(filepath.Dir(ak), "missing"), "banpush-peer=web1", lineFor(t, "web1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestInstallRefusesLinks: a link the account controls is never followed:
// authorized_keys as a link to root's file, ~/.ssh as a link to another
// directory (/root/.ssh, say), authorized_keys as a second name (hard link)
// for root's file.
func TestInstallRefusesLinks(t *testing.T) {
	secretPath, secret := secretFile(t)
	t.Run("file is a symlink", func(t *testing.T) {
		home, ak := newHome(t)
		os.Remove(ak)
		if err := os.Symlink(secretPath, ak); err != nil {
			t.Fatal(err)
		}
		if _, err := InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1")); err == nil {
			t.Error("installed through a symlink")
		}
		assertNoCopy(t, home, secret)
	})
	t.Run(".ssh is a symlink", func(t *testing.T) {
		home, _ := newHome(t)
		other := t.TempDir() // root's own .ssh
		otherAK := filepath.Join(other, "authorized_keys")
		if err := os.WriteFile(otherAK, []byte("# root's keys\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(home, ".ssh"))
		if err := os.Symlink(other, filepath.Join(home, ".ssh")); err != nil {
			t.Fatal(err)
		}
		if _, err := InstallFile(filepath.Join(home, ".ssh", "authorized_keys"), "banpush-peer=web1", lineFor(t, "web1")); err == nil {
			t.Error("installed through a symlinked directory")
		}
		if b, _ := os.ReadFile(otherAK); string(b) != "# root's keys\n" {
			t.Errorf("the other directory's authorized_keys changed: %q", b)
		}
	})
	t.Run("file is a hard link", func(t *testing.T) {
		home, ak := newHome(t)
		os.Remove(ak)
		if err := os.Link(secretPath, ak); err != nil {
			t.Skipf("cannot make the hard link here: %v", err)
		}
		if _, err := InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1")); err == nil {
			t.Error("installed over a second name of another file")
		}
		os.Remove(ak) // the second name itself, which the test made
		assertNoCopy(t, home, secret)
	})
}

// TestInstallRace: the account swaps authorized_keys with a symlink to a
// victim file, and back, as fast as it can while root installs lines: the
// victim's content and mode never change, and no file of the account ever
// holds a copy of root's secret. (Reading, writing and changing the mode by
// path let the swap land between two steps.)
func TestInstallRace(t *testing.T) {
	secretPath, secret := secretFile(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("victim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	home, ak := newHome(t)
	link := filepath.Join(home, ".ssh", "link")
	plain := filepath.Join(home, ".ssh", "plain")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			target := victim
			if i%2 == 1 {
				target = secretPath
			}
			os.Symlink(target, link)
			os.Rename(link, ak) // authorized_keys is a link now
			os.WriteFile(plain, []byte("# admin\n"), 0o600)
			os.Rename(plain, ak) // and a plain file again
		}
	}()
	for i := 0; i < 300; i++ {
		InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1")) // refusals are expected
	}
	stop.Store(true)
	wg.Wait()
	b, _ := os.ReadFile(victim)
	fi, _ := os.Stat(victim)
	if string(b) != "victim\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("victim now %q mode %v, want unchanged", b, fi.Mode().Perm())
	}
	assertNoCopy(t, home, secret)
}

// TestInstallKeepsOwner: as root, the file stays the account's, and a
// link in a directory of root's that nobody else can write is followed.
func TestInstallKeepsOwner(t *testing.T) {
	testenv.Need(t, testenv.Root("changes file owners"))
	home, ak := newHome(t)
	// A link of root's to the home, in a directory only root may change.
	rootDir := t.TempDir()
	if err := os.Chmod(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(home, filepath.Join(rootDir, "home")); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallFile(filepath.Join(rootDir, "home", ".ssh", "authorized_keys"), "banpush-peer=web1", lineFor(t, "web1")); err != nil {
		t.Fatalf("through root's link: %v", err)
	}
	fi, err := os.Stat(ak)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != 0o600 {
		t.Errorf("owner %d:%d mode %v, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), nobody, nobody)
	}
	// A file of a third account in the account's directory is refused.
	if err := os.Chown(ak, nobody-1, nobody-1); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallFile(ak, "banpush-peer=web1", lineFor(t, "web1")); err == nil {
		t.Error("installed into a file owned by neither root nor the directory's owner")
	}
}
