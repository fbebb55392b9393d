package main

import (
	"io"
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

// TestContribApplyUnbansUnits: the path unit watches the log that
// apply-unbans reads by default, the service's StateDirectory holds its
// default cursor, and every path and timer unit starts a service that
// contrib has.
func TestContribApplyUnbansUnits(t *testing.T) {
	dir := filepath.Join("..", "..", "contrib", "systemd")
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var cli CLI
	parser := newParser(&cli, &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }})
	if _, err := parser.Parse([]string{"apply-unbans"}); err != nil {
		t.Fatal(err)
	}
	def := cli.ApplyUnbans
	if want := "PathModified=" + def.Log + "\n"; !strings.Contains(read("banpush-apply-unbans.path"), want) {
		t.Errorf("banpush-apply-unbans.path: no %q (apply-unbans --log's default)", want)
	}
	service := read("banpush-apply-unbans.service")
	if want := "StateDirectory=" + filepath.Base(filepath.Dir(def.State)) + "\n"; filepath.Dir(filepath.Dir(def.State)) != "/var/lib" || !strings.Contains(service, want) {
		t.Errorf("banpush-apply-unbans.service: no %q for apply-unbans --state's default %s", want, def.State)
	}
	if !strings.Contains(service, "ExecStart=/usr/local/bin/banpush apply-unbans\n") {
		t.Error("banpush-apply-unbans.service does not run apply-unbans with its defaults")
	}
	triggers, _ := filepath.Glob(filepath.Join(dir, "banpush-*.path"))
	timers, _ := filepath.Glob(filepath.Join(dir, "banpush-*.timer"))
	for _, u := range append(triggers, timers...) {
		text := read(filepath.Base(u))
		svc := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(u), ".path"), ".timer") + ".service"
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, "Unit="); ok {
				svc = v
			}
		}
		if _, err := os.Stat(filepath.Join(dir, svc)); err != nil {
			t.Errorf("%s starts %s, which contrib/systemd does not have", u, svc)
		}
	}
}
