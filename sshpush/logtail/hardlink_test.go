package logtail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesHardLink: apply-unbans (root) reads the received log in a
// directory the receiving account writes. A log that is a second name for
// another file (a hard link the account made to a file of root's, where
// fs.protected_hardlinks is off) is refused, not parsed.
func TestOpenRefusesHardLink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root's own file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "received.log")
	if err := os.Link(secret, log); err != nil {
		t.Fatal(err)
	}
	r, err := Open(log, nil, maxLine)
	if err == nil {
		r.Close()
		t.Fatal("Open read a log with two names")
	}
	if !strings.Contains(err.Error(), "hard links") {
		t.Errorf("got %v, want a refusal that names the hard link", err)
	}
}
