package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionStamped: a build stamped with -ldflags -X, as the README's
// build command does, reports that version and commit, and so does its
// receiver's ping answer, which 'peers check' shows as VERSION.
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds banpush")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "banpush")
	build := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X main.version=v9.8.7-test -X main.commit=0123456789abcdef", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "banpush v9.8.7-test commit 0123456789abcdef go") {
		t.Errorf("version: %q, %v; want the stamped version and commit", out, err)
	}
	ping := exec.Command(bin, "receive", "--peer", "web1", "--log", filepath.Join(dir, "received.log"))
	ping.Env = append(os.Environ(), "SSH_ORIGINAL_COMMAND=banpush-v1 ping")
	out, err = ping.Output()
	if err != nil || string(out) != "banpush-v1 ok peer=web1 version=v9.8.7-test\n" {
		t.Errorf("ping: %q, %v; want the stamped version", out, err)
	}
}

// TestBuildVersion: without a stamp, a build names its commit when it has
// one, so that two builds of different commits differ in 'peers check'.
func TestBuildVersion(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "", "0123456789abcdef0123.dirty"
	if got := buildVersion(); got != "devel+0123456789ab.dirty" {
		t.Errorf("got %q, want devel+0123456789ab.dirty", got)
	}
	version = "v1.2.3"
	if got := buildVersion(); got != "v1.2.3" {
		t.Errorf("got %q, want v1.2.3", got)
	}
}
