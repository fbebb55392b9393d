//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/testenv"
)

// TestEndToEndFleetSetupHost runs contrib/fleet/setup-host.sh again on h2
// of the demo's fleet, as an administrator would after a change to the
// fleet directory, and checks what it does when things go wrong:
//   - sshd -t refuses banpush's sshd files (an OpenSSH that does not know
//     a keyword): the file it replaced is back, the file it added is gone,
//     and sshd -t accepts what is left;
//   - fail2ban-client -t refuses banpush's fail2ban files: every sshd and
//     fail2ban file of the run is back as it was, even those that passed;
//   - an ignoreip set in jail.local stays in force next to the peers';
//   - a new user CA: the old one's line stays, with a warning, until
//     --drop-other-cas removes it; only then is h1's old certificate
//     refused.
func TestEndToEndFleetSetupHost(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	h := e2eUp(t, "--fleet")
	fleet := filepath.Join(h.dir, "h2", "fleet") // h2's copy (scp -r fleet root@h2:)
	script := filepath.Join(fleet, "contrib", "fleet", "setup-host.sh")
	opts := []string{"--allow-private", "--from", "10.77.0.0/28", "--ignoreip", "198.51.100.9"}

	// setup runs the script on h2 and returns what it printed, stdout and
	// stderr together, and its exit status.
	setup := func(t *testing.T, args ...string) (string, int) {
		t.Helper()
		out, err := h.on("h2", append([]string{"sh", "-c", `sh "$0" "$@" 2>&1`, script}, append(opts, args...)...)...)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out, exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out, 0
	}
	// file returns a file of h2, and whether it exists.
	file := func(t *testing.T, path string) (string, bool) {
		t.Helper()
		if _, err := h.on("h2", "test", "-e", path); err != nil {
			return "", false
		}
		return h.mustOn("h2", "cat", path), true
	}
	// put writes a file of h2.
	put := func(t *testing.T, path, content string) {
		t.Helper()
		src := filepath.Join(t.TempDir(), "file")
		writeTestFile(t, src, content)
		h.mustOn("h2", "install", "-m", "0644", src, path)
	}
	// edit replaces a file of h2's fleet directory, and puts it back when
	// the test ends.
	edit := func(t *testing.T, rel, content string) {
		t.Helper()
		path := filepath.Join(fleet, rel)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Error(err)
			}
		})
		writeTestFile(t, path, content)
	}
	mustFile := func(t *testing.T, path string) string {
		t.Helper()
		content, ok := file(t, path)
		if !ok {
			t.Fatalf("h2: %s: missing", path)
		}
		return content
	}
	const (
		sshdConf   = "/etc/ssh/sshd_config.d/banpush.conf"
		fleetConf  = "/etc/ssh/sshd_config.d/banpush-fleet.conf"
		jail       = "/etc/fail2ban/jail.d/banpush.conf"
		pushLocal  = "/etc/fail2ban/jail.d/banpush-push.local"
		ignoreConf = "/etc/fail2ban/jail.d/00-banpush-ignoreip.local"
	)

	t.Run("sshd refuses", func(t *testing.T) {
		before := mustFile(t, sshdConf)
		fleetBefore := mustFile(t, fleetConf)
		h.mustOn("h2", "rm", fleetConf) // as on a first run: the script adds it
		t.Cleanup(func() { put(t, fleetConf, fleetBefore) })
		orig, err := os.ReadFile(filepath.Join(fleet, "contrib", "sshd", "banpush.conf"))
		if err != nil {
			t.Fatal(err)
		}
		edit(t, "contrib/sshd/banpush.conf", string(orig)+"\tNoSuchKeyword yes\n")

		out, code := setup(t)
		t.Logf("setup-host.sh:\n%s", out)
		if code != 1 {
			t.Errorf("setup-host.sh: got exit %d, want 1", code)
		}
		for _, want := range []string{"sshd -t refused", "put back the previous " + sshdConf, "removed the new " + fleetConf} {
			if !strings.Contains(out, want) {
				t.Errorf("setup-host.sh: got no %q in its output", want)
			}
		}
		if got := mustFile(t, sshdConf); got != before {
			t.Errorf("h2: %s: got\n%s\nwant the previous file\n%s", sshdConf, got, before)
		}
		if _, ok := file(t, fleetConf); ok {
			t.Errorf("h2: %s: still there, want it removed", fleetConf)
		}
		if _, err := h.on("h2", "sshd", "-t"); err != nil {
			t.Errorf("h2: sshd -t after the refused run: %v", err)
		}
	})

	t.Run("fail2ban refuses", func(t *testing.T) {
		// An administrator's edit, which the run replaces and must put back.
		edited := mustFile(t, sshdConf) + "# edited on h2\n"
		put(t, sshdConf, edited)
		jailBefore := mustFile(t, jail)
		pushBefore := mustFile(t, pushLocal)
		h.mustOn("h2", "rm", pushLocal)
		t.Cleanup(func() { put(t, pushLocal, pushBefore) })
		// A receiving log that is not there: fail2ban would not start.
		orig, err := os.ReadFile(filepath.Join(fleet, "contrib", "fail2ban", "jail.d", "banpush.conf"))
		if err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(string(orig), "logpath  = /var/log/banpush/received.log", "logpath  = /var/log/banpush/missing.log", 1)
		if broken == string(orig) {
			t.Fatal("contrib/fail2ban/jail.d/banpush.conf: no logpath to change")
		}
		edit(t, "contrib/fail2ban/jail.d/banpush.conf", broken)

		out, code := setup(t)
		t.Logf("setup-host.sh:\n%s", out)
		if code != 1 {
			t.Errorf("setup-host.sh: got exit %d, want 1", code)
		}
		for _, want := range []string{"fail2ban-client -t refused", "put back the previous " + sshdConf,
			"put back the previous " + jail, "removed the new " + pushLocal} {
			if !strings.Contains(out, want) {
				t.Errorf("setup-host.sh: got no %q in its output", want)
			}
		}
		if got := mustFile(t, sshdConf); got != edited {
			t.Errorf("h2: %s: got\n%s\nwant the edited file back\n%s", sshdConf, got, edited)
		}
		if got := mustFile(t, jail); got != jailBefore {
			t.Errorf("h2: %s: got\n%s\nwant the previous file\n%s", jail, got, jailBefore)
		}
		if _, ok := file(t, pushLocal); ok {
			t.Errorf("h2: %s: still there, want it removed", pushLocal)
		}
		if _, err := h.on("h2", "fail2ban-client", "-t"); err != nil {
			t.Errorf("h2: fail2ban-client -t after the refused run: %v", err)
		}
	})

	t.Run("ignoreip kept", func(t *testing.T) {
		put(t, "/etc/fail2ban/jail.local", "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 203.0.113.7\n")
		out, code := setup(t)
		t.Logf("setup-host.sh:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh: got exit %d, want 0", code)
		}
		if !strings.Contains(out, "ignoreip: kept 203.0.113.7,") {
			t.Errorf("setup-host.sh: does not say it kept jail.local's 203.0.113.7")
		}
		first := mustFile(t, ignoreConf)
		for _, jail := range []string{"banpush", "sshd"} {
			got := h.mustOn("h2", "fail2ban-client", "get", jail, "ignoreip")
			for _, want := range []string{"10.77.0.11", "10.77.0.12", "10.77.0.13", "198.51.100.9", "203.0.113.7"} {
				if !e2eHasWord(got, want) {
					t.Errorf("h2: jail %s: got ignoreip\n%s\nwant %s in it", jail, got, want)
				}
			}
		}
		if out, code := setup(t); code != 0 {
			t.Fatalf("setup-host.sh, again: got exit %d, want 0\n%s", code, out)
		}
		if got := mustFile(t, ignoreConf); got != first {
			t.Errorf("h2: %s after a second run: got\n%s\nwant the same as after the first\n%s", ignoreConf, got, first)
		}
	})

	t.Run("user CA rotation", func(t *testing.T) {
		oldCA := fingerprintFile(t, filepath.Join(h.dir, "ca", "user_ca.pub"))
		dir := t.TempDir()
		keygen(t, "-t", "ed25519", "-N", "", "-C", "banpush-user-ca-2", "-f", filepath.Join(dir, "user_ca"))
		pub, err := os.ReadFile(filepath.Join(dir, "user_ca.pub"))
		if err != nil {
			t.Fatal(err)
		}
		newCA := fingerprintFile(t, filepath.Join(dir, "user_ca.pub"))
		edit(t, "user_ca.pub", string(pub))

		out, code := setup(t)
		t.Logf("setup-host.sh:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh: got exit %d, want 0", code)
		}
		if !strings.Contains(out, "warning: "+e2eAuthorizedKeys+" still trusts the user CA "+oldCA) || !strings.Contains(out, "--drop-other-cas") {
			t.Errorf("setup-host.sh: got no warning about the old user CA %s with the --drop-other-cas hint", oldCA)
		}
		if keys := e2eLines(mustFile(t, e2eAuthorizedKeys)); len(keys) != 2 {
			t.Errorf("h2: %s: got %d lines, want 2 (the old CA's and the new one's)", e2eAuthorizedKeys, len(keys))
		}
		if got := pushResults(t, h, "10.77.0.96")["h2"]; got != "ok" {
			t.Errorf("h1 -> h2 with the old CA's certificate, during the rotation: got %q, want ok", got)
		}
		mode := h.mustOn("h2", "stat", "-c", "%a %U:%G", e2eAuthorizedKeys)

		out, code = setup(t, "--drop-other-cas")
		t.Logf("setup-host.sh --drop-other-cas:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh --drop-other-cas: got exit %d, want 0", code)
		}
		if !strings.Contains(out, "removed the line of the user CA "+oldCA) {
			t.Errorf("setup-host.sh --drop-other-cas: does not say it removed the old CA %s", oldCA)
		}
		if keys := e2eLines(mustFile(t, e2eAuthorizedKeys)); len(keys) != 1 || !strings.HasSuffix(keys[0], " banpush-ca="+newCA) {
			t.Errorf("h2: %s: got %q, want one line, the new CA's (%s)", e2eAuthorizedKeys, keys, newCA)
		}
		if got := h.mustOn("h2", "stat", "-c", "%a %U:%G", e2eAuthorizedKeys); got != mode {
			t.Errorf("h2: %s: got mode and owner %q, want %q as before", e2eAuthorizedKeys, got, mode)
		}
		if got := pushResults(t, h, "10.77.0.95")["h2"]; got != "auth" {
			t.Errorf("h1 -> h2 with the old CA's certificate, after --drop-other-cas: got %q, want auth", got)
		}
	})
}

// pushResults pushes addr from h1 with push --wait and returns each
// peer's result.
func pushResults(t *testing.T, h *e2eHosts, addr string) map[string]string {
	t.Helper()
	out, err := h.on("h1", "banpush", "push", "--wait", "--json", "--allow-private", "--jail", "e2e", "--", addr)
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != exitPeers) {
		t.Fatalf("h1: push --wait: %v\n%s", err, out)
	}
	var reports []peerReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("h1: push --wait --json: %v\n%s", err, out)
	}
	results := map[string]string{}
	for _, r := range reports {
		results[r.Peer] = r.Result
	}
	return results
}

// fingerprintFile returns the SHA256 fingerprint of a public key file, as
// ssh-keygen -l prints it.
func fingerprintFile(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l -f %s: %v", path, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen -l -f %s: got %q", path, out)
	}
	return f[1]
}
