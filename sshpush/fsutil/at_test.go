package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirAt: the by-name operations of a Dir never follow a link at the
// last component, and say ErrLink or os.ErrNotExist where that is what
// they found.
func TestDirAt(t *testing.T) {
	dir := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "file"), []byte("elsewhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"dirlink": elsewhere, "filelink": filepath.Join(elsewhere, "file"), "dangling": filepath.Join(elsewhere, "new")} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	if _, err := d.Sub("dirlink"); !errors.Is(err, ErrLink) {
		t.Errorf("Sub(link to a directory): %v, want ErrLink", err)
	}
	if _, _, err := d.MkdirSub("dirlink", 0o700); !errors.Is(err, ErrLink) {
		t.Errorf("MkdirSub(link to a directory): %v, want ErrLink", err)
	}
	if _, err := d.Sub("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sub(missing): %v, want ErrNotExist", err)
	}
	sub, made, err := d.MkdirSub("sub", 0o700)
	if err != nil || !made {
		t.Fatalf("MkdirSub: %v, made %v", err, made)
	}
	sub.Close()
	if sub, made, err = d.MkdirSub("sub", 0o700); err != nil || made {
		t.Errorf("MkdirSub again: %v, made %v; want it opened, not made", err, made)
	}
	sub.Close()

	if _, _, err := d.Open("filelink", unix.O_RDONLY); !errors.Is(err, ErrLink) {
		t.Errorf("Open(link): %v, want ErrLink", err)
	}
	if _, _, err := d.Open("fifo", unix.O_RDONLY); err == nil {
		t.Error("Open(FIFO): no error")
	}
	if _, err := d.Create("dangling", 0o600, os.Getuid(), os.Getgid()); err == nil {
		t.Error("Create through a dangling link: no error")
	}
	if _, err := os.Lstat(filepath.Join(elsewhere, "new")); err == nil {
		t.Error("Create made the link's target")
	}
	f, err := d.Create("new", 0o640, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("Create: %v, mode %v; want 0640 whatever the umask", err, fi.Mode().Perm())
	}
	if err := d.Rename("filelink", "moved"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("moved"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(elsewhere, "file")); err != nil || string(b) != "elsewhere\n" {
		t.Errorf("the link's target: %q, %v; want it untouched", b, err)
	}
	names, err := d.Names()
	slices.Sort(names)
	if want := []string{"dangling", "dirlink", "fifo", "new", "sub"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("Names: %q, %v; want %q", names, err, want)
	}
}

// TestAppendOnly: with the attribute set, the file takes appends and
// nothing else, from root too; without it, everything again.
func TestAppendOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting the append-only attribute needs root")
	}
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := SetAppendOnly(f, true); errors.Is(err, ErrNoAttributes) {
		t.Skipf("%v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer SetAppendOnly(f, false)
	if ao, err := AppendOnly(f); err != nil || !ao {
		t.Fatalf("AppendOnly: %v, %v", ao, err)
	}
	if _, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		t.Error("opened for writing without O_APPEND")
	}
	if err := os.Truncate(path, 1<<30); err == nil {
		t.Error("truncated (extended) it")
	}
	if err := os.Rename(path, path+".1"); err == nil {
		t.Error("renamed it")
	}
	a, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteString("line\n"); err != nil {
		t.Errorf("append: %v", err)
	}
	a.Close()
	if err := SetAppendOnly(f, false); err != nil {
		t.Fatal(err)
	}
	if ao, err := AppendOnly(f); err != nil || ao {
		t.Errorf("after clearing: %v, %v", ao, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Errorf("truncate after clearing: %v", err)
	}
}
