package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesUnsafeDirs: a symlinked subdirectory (Compact would delete
// files through it) or one others may write is refused.
func TestOpenRefusesUnsafeDirs(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"symlinked cursors", func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), filepath.Join(dir, "cursors")); err != nil {
				t.Fatal(err)
			}
		}, "cursors: not a directory"},
		{"group-writable journal", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "journal"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, "journal"), 0o770); err != nil {
				t.Fatal(err)
			}
		}, "journal: writable by group or others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			_, err := Open(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
