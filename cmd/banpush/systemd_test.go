package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContribSystemdUnits: the command lines of contrib/systemd's units
// parse with banpush's own command line (a renamed flag fails here, not on
// every host), no unit names documentation that does not exist, and
// systemd-analyze verify accepts them where it is installed.
func TestContribSystemdUnits(t *testing.T) {
	units, err := filepath.Glob(filepath.Join("..", "..", "contrib", "systemd", "banpush-*"))
	if err != nil || len(units) < 4 {
		t.Fatalf("units: %v, %v", units, err)
	}
	dir := t.TempDir()
	var copies []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, "ExecStart=/usr/local/bin/banpush "); ok {
				if _, cmd := parseArgs(t, strings.Fields(v)); cmd == "" {
					t.Errorf("%s: %q selects no command", u, v)
				}
			}
			if strings.HasPrefix(l, "Documentation=") && strings.Contains(l, "man:") {
				t.Errorf("%s names a man page banpush does not ship: %s", u, l)
			}
		}
		// verify checks that ExecStart's program exists: use one that does.
		c := filepath.Join(dir, filepath.Base(u))
		writeTestFile(t, c, strings.ReplaceAll(text, "/usr/local/bin/banpush", "/bin/true"))
		copies = append(copies, c)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: units not verified")
		return
	}
	if out, err := exec.Command("systemd-analyze", append([]string{"verify"}, copies...)...).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
