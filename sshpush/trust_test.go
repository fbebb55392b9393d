package sshpush

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAppendKnownHost: a file without a final newline gets one before the
// new line.
func TestAppendKnownHost(t *testing.T) {
	tests := []struct {
		name, before, want string
	}{
		{"missing", "", "new\n"},
		{"newline", "a\n", "a\nnew\n"},
		{"no newline", "a", "a\nnew\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			if tt.before != "" {
				if err := os.WriteFile(path, []byte(tt.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := AppendKnownHost(path, "new"); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
