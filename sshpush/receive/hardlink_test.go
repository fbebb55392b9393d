package receive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadCountersRefusesHardLink: 'banpush status' reads the state beside
// the log as root, in a directory the receiving account writes; a state
// file that is a second name for another file is refused, not parsed.
func TestReadCountersRefusesHardLink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root's own file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "received.log")
	if err := os.Link(secret, log+".state"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCounters(log); err == nil || !strings.Contains(err.Error(), "one name") {
		t.Errorf("got %v, want a refusal of a state file with two names", err)
	}
}
