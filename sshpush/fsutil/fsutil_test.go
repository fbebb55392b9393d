package fsutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestWriteAtomic: WriteAtomic and ReplaceFile (the same, unsynced) replace
// a file whole, keep an existing file's mode, leave no temporary file and
// refuse a symlink in the file's place.
func TestWriteAtomic(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(string, []byte, os.FileMode) error
	}{{"WriteAtomic", WriteAtomic}, {"ReplaceFile", ReplaceFile}} {
		t.Run(tt.name, func(t *testing.T) {
			write := tt.write
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := write(path, []byte("one"), 0o640); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Fatalf("new file mode %v, err %v; want 0640", fi.Mode().Perm(), err)
			}
			// An existing file keeps its mode, whatever perm says.
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := write(path, []byte("two"), 0o644); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			fi, _ = os.Stat(path)
			if string(b) != "two" || fi.Mode().Perm() != 0o600 {
				t.Errorf("got %q mode %v, want \"two\" mode 0600", b, fi.Mode().Perm())
			}
			// No temporary file is left behind.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("%d entries in the directory, want 1", len(ents))
			}
			// A symlink in its place is refused, not followed.
			link := filepath.Join(dir, "link")
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			if err := write(link, []byte("three"), 0o600); err == nil {
				t.Error("replaced a symlink")
			}
		})
	}
}

func TestLockDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Lock(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if ok, err := TryLock(b); ok || err != nil {
		t.Fatalf("TryLock on a held lock = %v, %v; want false, nil", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := Lock(ctx, b); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("Lock on a held lock = %v, want ErrLockTimeout", err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if err := Lock(context.Background(), b); err != nil {
		t.Errorf("Lock after Unlock: %v", err)
	}
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir("relative/path"); err == nil {
		t.Error("a relative path was accepted")
	}
	d, err := OpenDir(filepath.Join(dir, "real"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := OpenDir(filepath.Join(dir, "real", "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
	// Links in a directory that is not root's, or that others may write,
	// are refused; in one of root's closed to others, followed, but not
	// round in circles.
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDir(filepath.Join(dir, "link"))
	_, loopErr := OpenDir(filepath.Join(dir, "loop"))
	if os.Geteuid() != 0 {
		if err == nil {
			t.Error("followed a link in a directory that is not root's")
		}
		return
	}
	if err != nil {
		t.Errorf("a link in root's own directory: %v", err)
	}
	if !errors.Is(loopErr, syscall.ELOOP) {
		t.Errorf("a loop of links: %v, want ELOOP", loopErr)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(filepath.Join(dir, "link")); err == nil {
		t.Error("followed a link in a directory others may write")
	}
}
