package sshpush

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHostKeysShared: dials that read the same unchanged known_hosts files
// share one parsed copy; a change to a file is read again.
func TestHostKeysShared(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	line := "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	target := func(port int) Target {
		return Target{Name: "p", HostName: "127.0.0.1", Port: port, User: "u",
			KnownHostsFiles: []string{kh, filepath.Join(dir, "missing")}}
	}
	a, err := loadHostKeys(target(2222))
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadHostKeys(target(2223))
	if err != nil {
		t.Fatal(err)
	}
	if a.db == nil || a.db != b.db {
		t.Fatalf("two loads of the same files: %p and %p, want one shared copy", a.db, b.db)
	}
	if got := len(b.db.HostKeys("[127.0.0.1]:2222")); got != 1 {
		t.Fatalf("%d keys for the known host, want 1", got)
	}
	// A peer trusted meanwhile: the file grows, and is read again.
	other := "[127.0.0.1]:2223 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl\n"
	if err := os.WriteFile(kh, []byte(line+other), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(kh, later, later); err != nil {
		t.Fatal(err)
	}
	c, err := loadHostKeys(target(2223))
	if err != nil {
		t.Fatal(err)
	}
	if c.db == b.db {
		t.Fatal("a changed file was not read again")
	}
	if got := len(c.db.HostKeys("[127.0.0.1]:2223")); got != 1 {
		t.Fatalf("%d keys for the newly trusted host, want 1", got)
	}
}
