//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/doctor"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
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
//   - a broken inventory, a broken jail file or a bad sshd option, each
//     pushed with a fleet directory that changes other files too, leaves
//     every file of the host as it was and fail2ban's ignoreip unchanged;
//   - a run with no options, or with --certs only, keeps the settings of
//     the earlier runs (authorized_keys, the action's arguments, ignoreip),
//     and a host set up without a settings file is not guessed at;
//   - a peer new in the inventory gets the hint to sync it, and a host
//     without systemd is told what to run instead of the timers;
//   - a new user CA: the old one's line stays, with a warning, until
//     --drop-other-cas removes it; only then is h1's old certificate
//     refused.
func TestEndToEndFleetSetupHost(t *testing.T) {
	testenv.Slow(t)
	e2eRequire(t)
	h := e2eUp(t, "--fleet")
	fleet := filepath.Join(h.dir, "h2", "fleet") // h2's copy (scp -r fleet root@h2:)
	script := filepath.Join(fleet, "contrib", "fleet", "setup-host.sh")
	opts := []string{"--allow-private", "--allow-unban", "--from", "10.77.0.0/28", "--ignoreip", "198.51.100.9"}

	// setupOnly runs the script on h2 with args alone, certificates from
	// certs on stdin when it is not "", and returns what it printed,
	// stdout and stderr together, and its exit status.
	setupOnly := func(t *testing.T, certs string, args ...string) (string, int) {
		t.Helper()
		cmd := `sh "$0" "$@" 2>&1`
		if certs != "" {
			cmd = `cat "$CERTS"/*-cert.pub | sh "$0" "$@" 2>&1`
		}
		out, err := h.on("h2", append([]string{"env", "CERTS=" + certs, "sh", "-c", cmd, script}, args...)...)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out, exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out, 0
	}
	// setup runs the script on h2 with opts, then args.
	setup := func(t *testing.T, args ...string) (string, int) {
		t.Helper()
		return setupOnly(t, "", append(append([]string(nil), opts...), args...)...)
	}
	// snapshot describes every file of h2 that setup-host.sh may touch:
	// path, mode, owner and content.
	snapshot := func(t *testing.T) []string {
		t.Helper()
		out := h.mustOn("h2", "sh", "-c", `find /etc/banpush /etc/ssh /etc/fail2ban /etc/logrotate.d /etc/systemd /var/lib/banpush \( -type f -o -type l \) -exec stat -c '%n %F %a %U:%G' {} + -exec sha256sum {} + | sort`)
		return strings.Split(strings.TrimSpace(out), "\n")
	}
	// liveIgnoreip is what h2's running fail2ban ignores, in the banpush
	// and sshd jails.
	liveIgnoreip := func(t *testing.T) string {
		t.Helper()
		return h.mustOn("h2", "fail2ban-client", "get", "banpush", "ignoreip") + h.mustOn("h2", "fail2ban-client", "get", "sshd", "ignoreip")
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

	// Each broken fleet directory also brings a valid change (a revoked
	// key in the KRL, a new host in the inventory): a run that installed
	// any of the fleet's files before it failed would show.
	inventory, err := os.ReadFile(filepath.Join(fleet, "peers"))
	if err != nil {
		t.Fatal(err)
	}
	withH4 := strings.Replace(string(inventory), "\nHost *\n", "\nHost h4\n    HostName 10.77.0.14\n\nHost *\n", 1)
	if withH4 == string(inventory) {
		t.Fatal("the demo's inventory has no Host * block to add h4 before")
	}
	revoked := func(t *testing.T) string {
		t.Helper()
		dir := t.TempDir()
		keygen(t, "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "key"))
		krl := filepath.Join(dir, "krl")
		if out, err := exec.Command("cp", filepath.Join(fleet, "banpush_revoked.krl"), krl).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		if out, err := exec.Command("ssh-keygen", "-k", "-u", "-s", filepath.Join(fleet, "user_ca.pub"), "-f", krl, filepath.Join(dir, "key.pub")).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -k -u: %v: %s", err, out)
		}
		data, err := os.ReadFile(krl)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	t.Run("broken files change nothing", func(t *testing.T) {
		jailOrig, err := os.ReadFile(filepath.Join(fleet, "contrib", "fail2ban", "jail.d", "banpush.conf"))
		if err != nil {
			t.Fatal(err)
		}
		sshdOrig, err := os.ReadFile(filepath.Join(fleet, "contrib", "sshd", "banpush.conf"))
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			edits map[string]string // fleet file -> content
			want  string            // in the output
		}{
			{name: "inventory typo", want: "does not load", edits: map[string]string{
				"peers": strings.Replace(withH4, "HostName 10.77.0.13", "HostNmae 10.77.0.13", 1)}},
			{name: "jail without its log", want: "fail2ban-client -t refused", edits: map[string]string{
				"peers": withH4,
				"contrib/fail2ban/jail.d/banpush.conf": strings.Replace(string(jailOrig),
					"logpath  = /var/log/banpush/received.log", "logpath  = /var/log/banpush/missing.log", 1)}},
			{name: "bad sshd option", want: "sshd -t refused", edits: map[string]string{
				"peers":                     withH4,
				"contrib/sshd/banpush.conf": string(sshdOrig) + "\tNoSuchKeyword yes\n"}},
		}
		if out, code := setup(t); code != 0 {
			t.Fatalf("setup-host.sh before the broken runs: exit %d\n%s", code, out)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for rel, content := range tt.edits {
					if content == "" || !strings.Contains(content, "\n") {
						t.Fatalf("%s: the edit changed nothing", rel)
					}
					edit(t, rel, content)
				}
				edit(t, "banpush_revoked.krl", revoked(t))
				before, ignoreBefore := snapshot(t), liveIgnoreip(t)
				out, code := setup(t)
				t.Logf("setup-host.sh:\n%s", out)
				if code != 1 {
					t.Errorf("setup-host.sh: got exit %d, want 1", code)
				}
				if !strings.Contains(out, tt.want) {
					t.Errorf("setup-host.sh: got no %q in its output", tt.want)
				}
				if after := snapshot(t); !slices.Equal(after, before) {
					t.Errorf("h2: files changed by the refused run:\n%s", lineDiff(before, after))
				}
				if got := liveIgnoreip(t); got != ignoreBefore {
					t.Errorf("h2: fail2ban's ignoreip: got\n%s\nwant it unchanged\n%s", got, ignoreBefore)
				}
			})
		}
	})

	t.Run("a re-run keeps the settings", func(t *testing.T) {
		if out, code := setup(t); code != 0 {
			t.Fatalf("setup-host.sh with the options: exit %d\n%s", code, out)
		}
		files := []string{e2eAuthorizedKeys, pushLocal, ignoreConf}
		want := map[string]string{}
		for _, f := range files {
			want[f] = mustFile(t, f)
		}
		ignoreBefore := liveIgnoreip(t)
		for _, w := range []string{"--allow-unban", "--allow-private", `from="10.77.0.0/28"`} {
			if !strings.Contains(want[e2eAuthorizedKeys], w) {
				t.Fatalf("%s after a run with the options: no %s in\n%s", e2eAuthorizedKeys, w, want[e2eAuthorizedKeys])
			}
		}
		certs := filepath.Join(h.dir, "ca", "h2")
		for _, run := range []struct {
			name  string
			certs string
		}{{"no options", ""}, {"--certs only", certs}} {
			var args []string
			if run.certs != "" {
				args = []string{"--certs"}
			}
			out, code := setupOnly(t, run.certs, args...)
			t.Logf("setup-host.sh %s:\n%s", run.name, out)
			if code != 0 {
				t.Fatalf("setup-host.sh, %s: exit %d", run.name, code)
			}
			for _, f := range files {
				if got := mustFile(t, f); got != want[f] {
					t.Errorf("h2: %s after a run with %s: got\n%s\nwant it unchanged\n%s", f, run.name, got, want[f])
				}
			}
			if got := liveIgnoreip(t); got != ignoreBefore {
				t.Errorf("h2: fail2ban's ignoreip after a run with %s: got\n%s\nwant\n%s", run.name, got, ignoreBefore)
			}
			for _, w := range []string{"allow-unban yes", "allow-private yes", "from 10.77.0.0/28", "ignoreip 198.51.100.9"} {
				if !strings.Contains(out, w) {
					t.Errorf("setup-host.sh, %s: does not show the setting %q", run.name, w)
				}
			}
			// Debian 12's fail2ban-client warns about allowipv6 at every
			// start; the script leaves it out.
			if strings.Contains(out, "allowipv6") {
				t.Errorf("setup-host.sh, %s: fail2ban's allowipv6 warning in its output", run.name)
			}
			// The demo's hosts have no systemd.
			if !strings.Contains(out, "systemd is not running here") || !strings.Contains(out, "apply-unbans --follow") || !strings.Contains(out, " flush") {
				t.Errorf("setup-host.sh, %s: does not say that systemd does not run and what to run instead", run.name)
			}
		}

		// An option changes its setting, and the run shows how.
		out, code := setupOnly(t, "", "--no-allow-unban")
		t.Logf("setup-host.sh --no-allow-unban:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh --no-allow-unban: exit %d", code)
		}
		if !strings.Contains(out, "- allow-unban yes") || !strings.Contains(out, "+ allow-unban no") {
			t.Errorf("setup-host.sh --no-allow-unban: does not show the change of allow-unban")
		}
		if got := mustFile(t, e2eAuthorizedKeys); strings.Contains(got, "--allow-unban") {
			t.Errorf("h2: %s after --no-allow-unban: still --allow-unban", e2eAuthorizedKeys)
		}
		if out, code := setupOnly(t, "", "--allow-unban"); code != 0 {
			t.Fatalf("setup-host.sh --allow-unban: exit %d\n%s", code, out)
		}
		if got := mustFile(t, e2eAuthorizedKeys); got != want[e2eAuthorizedKeys] {
			t.Errorf("h2: %s after --allow-unban again: got\n%s\nwant\n%s", e2eAuthorizedKeys, got, want[e2eAuthorizedKeys])
		}

		// A host set up by a script that kept no settings: a run without
		// options does not guess them, and changes nothing.
		const settings = "/etc/banpush/setup-host.conf"
		kept := mustFile(t, settings)
		h.mustOn("h2", "rm", settings)
		t.Cleanup(func() { put(t, settings, kept); h.mustOn("h2", "chmod", "0600", settings) })
		before := snapshot(t)
		out, code = setupOnly(t, "")
		t.Logf("setup-host.sh without a settings file:\n%s", out)
		if code != 1 || !strings.Contains(out, "kept no settings") {
			t.Errorf("setup-host.sh without a settings file and no options: got exit %d, want 1 and why", code)
		}
		if after := snapshot(t); !slices.Equal(after, before) {
			t.Errorf("h2: files changed by the refused run:\n%s", lineDiff(before, after))
		}
	})

	// Fleet detection: --detect-policy writes the policy into the line and
	// enables the fleet jail; a re-run without options keeps it; and
	// --no-detect takes it away again.
	t.Run("detect", func(t *testing.T) {
		const fleetLocal = "/etc/fail2ban/jail.d/banpush-fleet.local"
		t.Cleanup(func() {
			if out, code := setupOnly(t, "", "--no-detect"); code != 0 {
				t.Errorf("setup-host.sh --no-detect: exit %d\n%s", code, out)
			}
		})
		out, code := setupOnly(t, "", "--detect-policy", "12 3 30m")
		t.Logf("setup-host.sh --detect-policy:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh --detect-policy: exit %d", code)
		}
		line := mustFile(t, e2eAuthorizedKeys)
		if !strings.Contains(line, "--fleet-failures 12 --fleet-hosts 3 --fleet-window 30m0s") {
			t.Errorf("h2: %s after --detect-policy: no fleet policy in\n%s", e2eAuthorizedKeys, line)
		}
		if got := mustFile(t, fleetLocal); !strings.Contains(got, "enabled = true") {
			t.Errorf("h2: %s: %q, want the fleet jail enabled", fleetLocal, got)
		}
		if jails, err := h.on("h2", "fail2ban-client", "status"); err != nil || !strings.Contains(jails, "banpush-fleet") {
			t.Errorf("h2: fail2ban runs %q (%v), want banpush-fleet among the jails", jails, err)
		}
		// The demo's hosts have no systemd: the script says what to run.
		if !strings.Contains(out, "report-failures --jail sshd --allow-private --fleet-failures 12") {
			t.Errorf("setup-host.sh --detect-policy: does not say to run report-failures with the policy")
		}
		out, code = setupOnly(t, "")
		if code != 0 || !strings.Contains(out, "detect 12 3 30m") || mustFile(t, e2eAuthorizedKeys) != line {
			t.Errorf("setup-host.sh without options after --detect-policy: exit %d, the line or the setting changed\n%s", code, out)
		}
		if out, code = setupOnly(t, "", "--detect-policy", "12 3 soon"); code != 1 || !strings.Contains(out, "three numbers") {
			t.Errorf("setup-host.sh --detect-policy with a bad window: exit %d, want 1 and why\n%s", code, out)
		}
		out, code = setupOnly(t, "", "--no-detect")
		if code != 0 || !strings.Contains(out, "+ detect no") {
			t.Fatalf("setup-host.sh --no-detect: exit %d\n%s", code, out)
		}
		if got := mustFile(t, e2eAuthorizedKeys); strings.Contains(got, "--fleet") {
			t.Errorf("h2: %s after --no-detect: still a fleet policy", e2eAuthorizedKeys)
		}
		if got := mustFile(t, fleetLocal); !strings.Contains(got, "enabled = false") {
			t.Errorf("h2: %s after --no-detect: %q", fleetLocal, got)
		}
	})

	t.Run("new peer", func(t *testing.T) {
		// Cleanups run last first: h4 leaves the fleet's inventory, then
		// the script runs again without it.
		t.Cleanup(func() {
			if out, code := setup(t); code != 0 {
				t.Errorf("setup-host.sh without h4: exit %d\n%s", code, out)
			}
		})
		edit(t, "peers", withH4)
		out, code := setup(t)
		t.Logf("setup-host.sh:\n%s", out)
		if code != 0 {
			t.Fatalf("setup-host.sh with h4 added: exit %d", code)
		}
		if !strings.Contains(out, "h4 is new in the inventory") || !strings.Contains(out, "banpush sync h4") {
			t.Errorf("setup-host.sh: no hint to sync h4")
		}
		if strings.Contains(out, "h3 is new") {
			t.Errorf("setup-host.sh: h3 named as new")
		}
	})

	// doctor on h2, a host of the fleet's inventory, with real sshd -T:
	// what makes every push to it fail must fail doctor.
	t.Run("doctor", func(t *testing.T) {
		doctorOn := func(t *testing.T) (map[string][]doctor.Result, int) {
			t.Helper()
			out, err := h.on("h2", "banpush", "doctor", "--json")
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			var rs []doctor.Result
			if err := json.Unmarshal([]byte(out), &rs); err != nil {
				t.Fatalf("h2: doctor --json: %v\n%s", err, out)
			}
			byCheck := map[string][]doctor.Result{}
			for _, r := range rs {
				byCheck[r.Check] = append(byCheck[r.Check], r)
			}
			t.Logf("h2: doctor: exit %d\n%s", code, out)
			return byCheck, code
		}
		status := func(rs []doctor.Result, st doctor.Status) bool {
			return slices.ContainsFunc(rs, func(r doctor.Result) bool { return r.Status == st })
		}
		rs, _ := doctorOn(t)
		for _, c := range []string{"authorized-keys", "sshd", "receiving-jail", "received-lines"} {
			if len(rs[c]) == 0 || status(rs[c], doctor.Fail) || status(rs[c], doctor.Skip) {
				t.Errorf("h2 as set up: doctor %s: got %+v, want it checked and not failed", c, rs[c])
			}
		}

		// The KRL gone: sshd refuses every key of the account.
		h.mustOn("h2", "mv", e2eKRL, e2eKRL+".aside")
		rs, code := doctorOn(t)
		h.mustOn("h2", "mv", e2eKRL+".aside", e2eKRL)
		if code != exitDoctor || !status(rs["sshd"], doctor.Fail) {
			t.Errorf("h2 without its KRL: doctor exit %d, sshd %+v; want exit %d and sshd failed", code, rs["sshd"], exitDoctor)
		}

		// The cert-authority line gone: nobody can push to h2.
		keys := mustFile(t, e2eAuthorizedKeys)
		h.mustOn("h2", "sed", "-i", "/^cert-authority,/d", e2eAuthorizedKeys)
		rs, code = doctorOn(t)
		if out, code := setup(t); code != 0 {
			t.Fatalf("setup-host.sh to put the line back: exit %d\n%s", code, out)
		}
		if got := mustFile(t, e2eAuthorizedKeys); got != keys {
			t.Fatalf("h2: %s: got\n%s\nwant the line back\n%s", e2eAuthorizedKeys, got, keys)
		}
		if code != exitDoctor || !status(rs["authorized-keys"], doctor.Fail) {
			t.Errorf("h2 without its cert-authority line: doctor exit %d, authorized-keys %+v; want exit %d and a failure", code, rs["authorized-keys"], exitDoctor)
		}

		// The log's directory left closed (a rotation that did not
		// finish): the line fails, and its jail and --allow-unban are
		// still checked.
		mode := strings.TrimSpace(h.mustOn("h2", "stat", "-c", "%a", "/var/log/banpush"))
		h.mustOn("h2", "chmod", "1700", "/var/log/banpush")
		rs, code = doctorOn(t)
		h.mustOn("h2", "chmod", mode, "/var/log/banpush")
		if code != exitDoctor || !status(rs["authorized-keys"], doctor.Fail) {
			t.Errorf("h2 with its log's directory closed: doctor exit %d, authorized-keys %+v; want exit %d and a failure", code, rs["authorized-keys"], exitDoctor)
		}
		if len(rs["receiving-jail"]) == 0 || status(rs["receiving-jail"], doctor.Skip) {
			t.Errorf("h2 with its log's directory closed: receiving-jail %+v, want it checked", rs["receiving-jail"])
		}
		for _, r := range rs["apply-unbans"] {
			if strings.Contains(r.Found, "no authorized_keys line") {
				t.Errorf("h2 with its log's directory closed: apply-unbans %+v, want the --allow-unban line counted", r)
			}
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

// lineDiff lists the lines only in before (-) and only in after (+).
func lineDiff(before, after []string) string {
	var b strings.Builder
	for _, l := range before {
		if !slices.Contains(after, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
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
