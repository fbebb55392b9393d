//go:build linux

package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The binary's paths, as contrib/packaging/build.sh defines them: contrib/
// names the source install's, and the build rewrites it to the package's
// in the packaged copies.
var (
	buildScript   = filepath.Join("..", "..", "contrib", "packaging", "build.sh")
	binaryPathRE  = regexp.MustCompile(`((?:/[A-Za-z0-9._-]+)*/s?bin/banpush)(?:[^A-Za-z0-9._-]|$)`)
	buildAssignRE = regexp.MustCompile(`(?m)^(src_bin|pkg_bin)=(\S+)`)
)

// buildPaths reads src_bin and pkg_bin from build.sh.
func buildPaths(t *testing.T) (src, pkg string) {
	t.Helper()
	b, err := os.ReadFile(buildScript)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range buildAssignRE.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "src_bin" {
			src = m[2]
		} else {
			pkg = m[2]
		}
	}
	if src == "" || pkg == "" {
		t.Fatalf("%s: no src_bin= or pkg_bin= line", buildScript)
	}
	return src, pkg
}

// TestContribBinaryPath: every contrib file that names the banpush binary
// names build.sh's src_bin, the one path the package build rewrites; the
// demo may also name build.sh's pkg_bin, which its --installed runs. A file that named another
// path would keep it in the packages, and point at nothing.
func TestContribBinaryPath(t *testing.T) {
	src, pkg := buildPaths(t)
	contrib := filepath.Join("..", "..", "contrib")
	named := 0
	err := filepath.WalkDir(contrib, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(contrib, path)
		if strings.HasPrefix(rel, "packaging/") {
			return nil // the rewrite's own definition
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, sub := range binaryPathRE.FindAllStringSubmatch(line, -1) {
				switch m := sub[1]; {
				case m == src:
					named++
				case rel == "demo/demo.sh" && m == pkg: // --installed
				default:
					t.Errorf("contrib/%s:%d names %s; the contrib files name %s (contrib/packaging/build.sh)", rel, i+1, m, src)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if named == 0 {
		t.Errorf("no contrib file names %s", src)
	}
}

// pkgRun runs a command with a timeout and returns its combined output.
func pkgRun(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %v, %v", name, strings.Join(args, " "), exitText(err), time.Since(start).Round(100*time.Millisecond))
	return out.String(), err
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func pkgMust(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := pkgRun(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// pkgFiles is what a package holds: regular files by path, with their
// permission bits.
type pkgFiles map[string]string

// debFiles lists the regular files of a .deb (dpkg-deb -c).
func debFiles(t *testing.T, deb string) pkgFiles {
	t.Helper()
	files := pkgFiles{}
	for _, line := range strings.Split(pkgMust(t, time.Minute, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue
		}
		files[strings.TrimPrefix(f[5], ".")] = f[0]
	}
	return files
}

// packageWants lists the files the packages must hold, from contrib/:
// every fail2ban filter and jail, every systemd unit (flush, and metrics
// where it exists) and every man page of the checkout.
func packageWants(t *testing.T, unitDir string, deb bool) []string {
	t.Helper()
	repo := filepath.Join("..", "..")
	want := []string{
		"/usr/bin/banpush",
		"/etc/fail2ban/action.d/banpush.conf",
		"/etc/ssh/sshd_config.d/banpush.conf",
		"/etc/logrotate.d/banpush",
		"/usr/share/doc/banpush/README.md",
		"/usr/share/doc/banpush/copyright",
		"/usr/share/doc/banpush/examples/authorized_keys.example",
		"/usr/share/doc/banpush/examples/banpush-firewall.local",
	}
	// banpush(1) and the completions, which build.sh has the binary print.
	want = append(want, "/usr/share/man/man1/banpush.1.gz", "/usr/share/bash-completion/completions/banpush",
		"/usr/share/fish/vendor_completions.d/banpush.fish")
	if deb {
		want = append(want, "/usr/share/doc/banpush/changelog.Debian.gz", "/usr/share/lintian/overrides/banpush",
			"/usr/share/zsh/vendor-completions/_banpush")
	} else {
		want = append(want, "/usr/share/zsh/site-functions/_banpush")
	}
	for _, g := range []struct{ glob, dir string }{
		{"contrib/fail2ban/filter.d/*.conf", "/etc/fail2ban/filter.d/"},
		{"contrib/fail2ban/jail.d/*.conf", "/etc/fail2ban/jail.d/"},
		{"contrib/systemd/banpush-*", unitDir},
		{"contrib/systemd/fail2ban.service.d/*.conf", unitDir + "fail2ban.service.d/"},
		{"docs/*.md", "/usr/share/doc/banpush/docs/"},
	} {
		m, _ := filepath.Glob(filepath.Join(repo, g.glob))
		if len(m) == 0 {
			t.Fatalf("no %s", g.glob)
		}
		for _, f := range m {
			want = append(want, g.dir+filepath.Base(f))
		}
	}
	// A man page anywhere in the checkout belongs in the package.
	filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() && regexp.MustCompile(`\.[1-8]$`).MatchString(d.Name()) {
			sec := d.Name()[len(d.Name())-1:]
			want = append(want, "/usr/share/man/man"+sec+"/"+d.Name()+".gz")
		}
		return nil
	})
	slices.Sort(want)
	return want
}

// checkContents compares what a package holds with what it must.
func checkContents(t *testing.T, what string, got []string, want []string) {
	t.Helper()
	slices.Sort(got)
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("%s: no %s", what, f)
		}
	}
	for _, f := range got {
		if !slices.Contains(want, f) {
			t.Errorf("%s: %s, which the test does not expect (add it to packageWants)", what, f)
		}
	}
}

// lintianWarnings are the warnings lintian gives the .deb, and why they
// stay. Any other warning, and any error, fails the test.
var lintianWarnings = map[string]string{
	"initial-upload-closes-no-bugs":     "the changelog's one entry closes no Debian bug (an ITP): the package is built from the Go module, not uploaded to Debian",
	"maintainer-script-calls-systemctl": "prerm stops the timers on removal with systemctl: the scripts are shared with the .rpm, which has no deb-systemd-invoke",
}

// TestPackages builds the .deb and .rpm with contrib/packaging/build.sh,
// checks them (contents, lintian, the path rewrite), and takes the .deb
// through its life on this machine: install, fail2ban-client -t and sshd -t
// with its files, the end-to-end test from the installed files, an edit of
// a configuration file, an upgrade, remove and purge. It installs packages
// and makes an account: in testenv's sandbox (as root) all of that happens
// in the sandbox's memory and vanishes with the test binary, even a killed
// one; without the sandbox it runs only where that is wanted, in CI or
// with BANPUSH_TEST_PACKAGES=1 on a disposable machine. It purges the
// package when it ends, whatever happened.
//
// nfpm comes from the module cache in the sandbox, which has no network:
// .ci/run fetches it first.
func TestPackages(t *testing.T) {
	if !testenv.Sandboxed() && !testenv.CI() && os.Getenv("BANPUSH_TEST_PACKAGES") != "1" {
		t.Skip("installs and purges the banpush package and account on this machine: runs in the test sandbox (as root), or with CI or BANPUSH_TEST_PACKAGES=1 set")
	}
	testenv.Slow(t)
	testenv.Need(t,
		testenv.Root("it installs the package"),
		testenv.Command("dpkg", "dpkg"),
		testenv.Command("lintian", "lintian"),
		testenv.Command("rpm", "rpm"),
		testenv.Command("fail2ban-client", "fail2ban"),
		testenv.Command(testenv.SSHD, "openssh-server"),
		testenv.Command("bash", "bash"),
	)
	e2eRequire(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("packages are built for amd64 and arm64, not %s", runtime.GOARCH)
	}
	// Never on a host that has banpush: the test ends with a purge.
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "banpush").Output(); err == nil {
		t.Fatalf("the banpush package is on this machine (%s): the test would purge it", out)
	}
	if _, err := exec.Command("getent", "passwd", "banpush").Output(); err == nil {
		t.Fatal("an account banpush exists on this machine: the test would remove it")
	}
	for _, d := range []string{"/etc/banpush", "/var/spool/banpush", "/var/log/banpush", "/var/lib/banpush", "/usr/local/bin/banpush"} {
		if _, err := os.Lstat(d); err == nil {
			t.Fatalf("%s exists on this machine: the test would remove it", d)
		}
	}
	t.Cleanup(func() {
		// Whatever failed: no package, no account.
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "banpush").Output(); err == nil && len(out) > 0 && !strings.Contains(string(out), "not-installed") {
			if out, err := exec.Command("dpkg", "--purge", "banpush").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge banpush: %v\n%s", err, out)
			}
		}
		if pw := getent(t, "passwd", "banpush"); len(pw) > 2 {
			if id, _ := strconv.Atoi(pw[2]); id > 0 {
				waitNoProcesses(id, 15*time.Second)
			}
			if out, err := exec.Command("userdel", "banpush").CombinedOutput(); err != nil {
				t.Errorf("cleanup: userdel banpush: %v\n%s", err, out)
			}
		}
	})

	_, pkgBin := buildPaths(t)
	arch := runtime.GOARCH
	dist := t.TempDir()
	pkgMust(t, 10*time.Minute, "bash", buildScript, "--version", "1.0.0", "--out", dist)
	debs := map[string]string{
		"amd64": filepath.Join(dist, "banpush_1.0.0-1_amd64.deb"),
		"arm64": filepath.Join(dist, "banpush_1.0.0-1_arm64.deb"),
	}
	rpms := map[string]string{
		"amd64": filepath.Join(dist, "banpush-1.0.0-1.x86_64.rpm"),
		"arm64": filepath.Join(dist, "banpush-1.0.0-1.aarch64.rpm"),
	}
	built, _ := filepath.Glob(filepath.Join(dist, "*"))
	t.Logf("built %d packages: %v", len(built), built)
	if len(built) != 4 {
		t.Errorf("got %d files in the output directory, want 4 (a .deb and an .rpm for amd64 and arm64)", len(built))
	}

	t.Run("contents", func(t *testing.T) {
		for a, deb := range debs {
			files := debFiles(t, deb)
			checkContents(t, filepath.Base(deb), slices.Collect(maps.Keys(files)), packageWants(t, "/lib/systemd/system/", true))
			if got := files["/usr/bin/banpush"]; got != "-rwxr-xr-x" {
				t.Errorf("%s: /usr/bin/banpush is %s, want -rwxr-xr-x", deb, got)
			}
			if got := strings.TrimSpace(pkgMust(t, time.Minute, "dpkg-deb", "-f", deb, "Architecture")); got != a {
				t.Errorf("%s: Architecture %s, want %s", deb, got, a)
			}
			// The binary is for that architecture, static, and names no
			// source-install path in any packaged file.
			root := t.TempDir()
			pkgMust(t, time.Minute, "dpkg-deb", "-x", deb, root)
			checkELF(t, filepath.Join(root, "usr/bin/banpush"), a)
			checkRewritten(t, root, pkgBin)
			conffiles := pkgMust(t, time.Minute, "dpkg-deb", "-I", deb, "conffiles")
			for f := range files {
				if strings.HasPrefix(f, "/etc/") && !strings.Contains(conffiles, f+"\n") {
					t.Errorf("%s: %s is not a conffile: an upgrade would overwrite its edits", deb, f)
				}
			}
		}
		for _, rpm := range rpms {
			got := strings.Fields(pkgMust(t, time.Minute, "rpm", "-qlp", rpm))
			checkContents(t, filepath.Base(rpm), got, packageWants(t, "/usr/lib/systemd/system/", false))
			config := strings.Fields(pkgMust(t, time.Minute, "rpm", "-qp", "--configfiles", rpm))
			for _, f := range got {
				if strings.HasPrefix(f, "/etc/") && !slices.Contains(config, f) {
					t.Errorf("%s: %s is not %%config", rpm, f)
				}
			}
		}
		t.Logf("%s:\n%s", filepath.Base(debs[arch]), pkgMust(t, time.Minute, "dpkg-deb", "-c", debs[arch]))
		t.Logf("%s:\n%s", filepath.Base(rpms[arch]), pkgMust(t, time.Minute, "rpm", "-qlp", rpms[arch]))
	})

	t.Run("lintian", func(t *testing.T) {
		out, err := pkgRun(t, 5*time.Minute, "lintian", "--allow-root", debs[arch])
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			tag, ok := lintianTag(line)
			switch {
			case !ok:
			case strings.HasPrefix(line, "W: ") && lintianWarnings[tag] != "":
				t.Logf("%s: %s", line, lintianWarnings[tag])
			default:
				t.Errorf("lintian: %s", line)
			}
		}
		if err != nil {
			t.Errorf("lintian: %v\n%s", err, out)
		}
	})
	if t.Failed() {
		return
	}

	var uid, gid int
	t.Run("install", func(t *testing.T) {
		pkgMust(t, 5*time.Minute, "dpkg", "-i", debs[arch])
		pw := getent(t, "passwd", "banpush")
		if len(pw) < 7 || pw[5] != "/var/lib/banpush" || pw[6] != "/bin/sh" {
			t.Errorf("passwd: got %q, want home /var/lib/banpush and shell /bin/sh", pw)
		}
		if len(pw) > 3 {
			uid, _ = strconv.Atoi(pw[2])
			gid, _ = strconv.Atoi(pw[3])
		}
		if uid == 0 || uid >= 1000 {
			t.Errorf("banpush's uid is %d, want a system account's", uid)
		}
		if sp := getent(t, "shadow", "banpush"); len(sp) < 2 || sp[1] != "*" {
			t.Errorf("shadow: got %q, want the password '*' (key-only: no password matches, and sshd still lets keys in)", sp)
		}
		for _, c := range []struct {
			path        string
			mode        fs.FileMode
			owner, grop string
		}{
			{"/etc/banpush", fs.ModeDir | 0o700, "root", "root"},
			{"/var/spool/banpush", fs.ModeDir | 0o700, "root", "root"},
			{"/var/log/banpush", fs.ModeDir | fs.ModeSticky | 0o771, "root", "banpush"},
			{"/var/log/banpush/received.log", 0o640, "banpush", "adm"},
			{"/var/lib/banpush/.ssh", fs.ModeDir | 0o700, "banpush", "banpush"},
			{"/var/lib/banpush/.ssh/authorized_keys", 0o600, "banpush", "banpush"},
		} {
			out, err := exec.Command("stat", "-c", "%U %G", c.path).Output()
			fi, serr := os.Stat(c.path)
			if err != nil || serr != nil {
				t.Errorf("%s: %v %v", c.path, err, serr)
				continue
			}
			if got, want := strings.TrimSpace(string(out)), c.owner+" "+c.grop; got != want || fi.Mode() != c.mode {
				t.Errorf("%s: got %s %s, want %s %s", c.path, fi.Mode(), got, c.mode, want)
			}
		}
		if f, err := os.Open("/var/log/banpush/received.log"); err == nil {
			if ao, err := fsutil.AppendOnly(f); err != nil || !ao {
				t.Errorf("/var/log/banpush/received.log: append-only %v (%v), want it append-only", ao, err)
			}
			f.Close()
		}
		if got := binVersion(t, pkgBin); got != "1.0.0" {
			t.Errorf("%s version: got %q, want 1.0.0", pkgBin, got)
		}
		// Nothing is enabled: the timers wait for an inventory.
		if links, _ := filepath.Glob("/etc/systemd/system/*.wants/banpush-*"); len(links) > 0 {
			t.Errorf("the package enabled %v", links)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("manual and completion", func(t *testing.T) {
		// man finds the page by name and renders it without a warning;
		// bash, as bash-completion loads the file, completes with it.
		if _, err := exec.LookPath("man"); err == nil {
			out, err := exec.Command("man", "--warnings", "-P", "cat", "banpush").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "banpush push") || strings.Contains(string(out), "warning") {
				t.Errorf("man --warnings banpush: %v\n%.2000s", err, out)
			}
		}
		prog := `source /usr/share/bash-completion/completions/banpush
COMP_WORDS=(banpush pe); COMP_CWORD=1; _banpush; echo "${COMPREPLY[*]}"`
		if out, err := exec.Command("bash", "-c", prog).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "peers" {
			t.Errorf("bash completion of 'banpush pe': %v %q, want peers", err, out)
		}
	})

	t.Run("fail2ban", func(t *testing.T) {
		// fail2ban-client -t on a copy of /etc/fail2ban as installed, with
		// the push action on the sshd jail; the sshd jail reads a log of
		// the test's, since this machine may have no /var/log/auth.log.
		tmp := t.TempDir()
		conf := filepath.Join(tmp, "fail2ban")
		pkgMust(t, time.Minute, "cp", "-a", "/etc/fail2ban", conf)
		writeTestFile(t, filepath.Join(tmp, "auth.log"), "")
		writeTestFile(t, filepath.Join(conf, "jail.d", "zz-test.local"), "[sshd]\nenabled = true\nbackend = polling\nlogpath = "+
			filepath.Join(tmp, "auth.log")+"\naction = %(action_)s\n         banpush\n")
		if out := pkgMust(t, time.Minute, "fail2ban-client", "-c", conf, "-t"); !strings.Contains(out, "OK: configuration test is successful") {
			t.Errorf("fail2ban-client -t:\n%s", out)
		}
		dump := pkgMust(t, time.Minute, "fail2ban-client", "-c", conf, "-d")
		for _, want := range []string{
			`'actionban', '` + pkgBin + ` push  --jail "sshd" --time "<time>" --bantime "<bantime>" -- "<ip>"'`,
			"['set', 'banpush', 'addlogpath', '/var/log/banpush/received.log', 'head']",
			"['add', 'banpush', 'polling']",
		} {
			if !strings.Contains(dump, want) {
				t.Errorf("fail2ban-client -d: no %s in\n%s", want, dump)
			}
		}
	})

	t.Run("sshd", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "host_key")
		pkgMust(t, time.Minute, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
		pkgMust(t, time.Minute, testenv.SSHD, "-t", "-h", key)
		out := pkgMust(t, time.Minute, testenv.SSHD, "-T", "-h", key, "-C", "user=banpush,host=peer.example,addr=192.0.2.10")
		for _, want := range []string{"permittty no", "disableforwarding yes", "exposeauthinfo yes", "authenticationmethods publickey"} {
			if !strings.Contains(out, "\n"+want+"\n") {
				t.Errorf("sshd -T for the banpush account: no %q", want)
			}
		}
	})

	t.Run("end-to-end", func(t *testing.T) {
		h := e2eUp(t, "--installed")
		keys := h.mustOn("h2", "cat", "/var/lib/banpush/.ssh/authorized_keys")
		if !strings.Contains(keys, `command="`+pkgBin+` receive `) {
			t.Errorf("h2's authorized_keys: want lines running %s receive:\n%s", pkgBin, keys)
		}
		if out, err := h.on("h1", "test", "-e", "/usr/local/bin/banpush"); err == nil {
			t.Errorf("h1 has /usr/local/bin/banpush: the test would not run the package's binary (%s)", out)
		}
		e2eBruteForce(t, h)
	})
	if t.Failed() {
		return
	}

	// An administrator's edit, a queued ban, a key, and a locked account:
	// an upgrade keeps every one.
	const edit = "# edited by TestPackages\n"
	jail := "/etc/fail2ban/jail.d/banpush.conf"
	appendFile(t, jail, edit)
	writeTestFile(t, "/var/spool/banpush/queued", "203.0.113.7\n")
	pkgMust(t, time.Minute, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/banpush/id_ed25519")
	pkgMust(t, time.Minute, "usermod", "-L", "banpush")

	t.Run("upgrade", func(t *testing.T) {
		dist2 := t.TempDir()
		pkgMust(t, 10*time.Minute, "bash", buildScript, "--version", "1.0.1", "--arch", arch, "--out", dist2)
		pkgMust(t, 5*time.Minute, "dpkg", "-i", filepath.Join(dist2, "banpush_1.0.1-1_"+arch+".deb"))
		if got := binVersion(t, pkgBin); got != "1.0.1" {
			t.Errorf("after the upgrade, %s version: got %q, want 1.0.1", pkgBin, got)
		}
		if b, _ := os.ReadFile(jail); !strings.HasSuffix(string(b), edit) {
			t.Errorf("%s: the edit did not survive the upgrade:\n%s", jail, b)
		}
		for _, f := range []string{"/var/spool/banpush/queued", "/etc/banpush/id_ed25519", "/etc/banpush/id_ed25519.pub"} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("after the upgrade: %v", err)
			}
		}
		if sp := getent(t, "shadow", "banpush"); len(sp) < 2 || sp[1] != "!*" {
			t.Errorf("shadow after the upgrade: got %q, want the account still locked (!*)", sp)
		}
		if pw := getent(t, "passwd", "banpush"); len(pw) < 3 || pw[2] != strconv.Itoa(uid) {
			t.Errorf("passwd after the upgrade: got %q, want uid %d", pw, uid)
		}
	})

	t.Run("remove", func(t *testing.T) {
		pkgMust(t, 5*time.Minute, "dpkg", "-r", "banpush")
		if _, err := os.Stat(pkgBin); err == nil {
			t.Errorf("%s is still there after remove", pkgBin)
		}
		for _, f := range []string{"/var/spool/banpush/queued", "/etc/banpush/id_ed25519", "/var/log/banpush/received.log", "/var/lib/banpush/.ssh/authorized_keys", jail} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("after remove: %v (remove keeps the data and the configuration)", err)
			}
		}
		if len(getent(t, "passwd", "banpush")) == 0 {
			t.Error("remove removed the account")
		}
	})

	t.Run("purge", func(t *testing.T) {
		// userdel refuses an account a process still runs as: a receiver
		// the demo's sshd started has had its SIGKILL, but may not be gone.
		if procs := waitNoProcesses(uid, 15*time.Second); procs != "" {
			t.Errorf("processes of the banpush account still run:\n%s", procs)
		}
		// The fast path's kernel set goes with the purge: a table made
		// here, only in the sandbox's own network namespace.
		nftables := testenv.Sandboxed() && exec.Command("nft", "add", "table", "inet", "banpush").Run() == nil
		t.Log(pkgMust(t, 5*time.Minute, "dpkg", "--purge", "banpush"))
		if nftables && exec.Command("nft", "list", "table", "inet", "banpush").Run() == nil {
			t.Error("after purge, the nftables table inet banpush is still there")
		}
		for _, db := range []string{"passwd", "group", "shadow", "gshadow"} {
			if e := getent(t, db, "banpush"); len(e) > 0 {
				t.Errorf("after purge, %s has %q", db, e)
			}
		}
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "banpush").CombinedOutput(); err == nil && !strings.Contains(string(out), "not-installed") {
			t.Errorf("after purge, dpkg knows banpush: %s", out)
		}
		// Every file named banpush*, or owned by the account's uid or
		// group, outside this checkout, the Go caches and the test's
		// temporary directories.
		args := []string{"/etc", "/usr", "/var", "/opt", "/srv", "/home", "/root"}
		for _, skip := range pruneDirs(t) {
			args = append(args, "-path", skip, "-prune", "-o")
		}
		args = append(args, "(", "-name", "*banpush*", "-o", "-uid", strconv.Itoa(uid), "-o", "-gid", strconv.Itoa(gid), ")", "-print")
		out, _ := exec.Command("find", append([]string{"-xdev"}, args...)...).Output() // unreadable corners are not ours
		t.Logf("after purge: find %s\n%s(end of list)", strings.Join(args, " "), out)
		if len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("after purge, left behind:\n%s", out)
		}
	})
}

// pruneDirs are the directories the purge check does not search: this
// checkout, the Go caches and the temporary directory, which hold
// banpush's source and builds, not the package's files.
func pruneDirs(t *testing.T) []string {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{repo, os.TempDir(), "/proc"}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT"} {
		if out, err := exec.Command("go", "env", v).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			dirs = append(dirs, string(bytes.TrimSpace(out)))
		}
	}
	return dirs
}

// binVersion is the version 'banpush version' reports ("banpush VERSION ...").
func binVersion(t *testing.T, bin string) string {
	t.Helper()
	f := strings.Fields(pkgMust(t, time.Minute, bin, "version"))
	if len(f) < 2 || f[0] != "banpush" {
		return strings.Join(f, " ")
	}
	return f[1]
}

// waitNoProcesses waits until no process runs as uid, and returns the
// ones still running (ps) when timeout passes, "" if none.
func waitNoProcesses(uid int, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ps", "-o", "pid,ppid,etime,args", "-u", strconv.Itoa(uid)).Output()
		if err != nil { // ps exits 1 when it lists nothing
			return ""
		}
		if time.Now().After(deadline) {
			return string(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getent returns the fields of name's entry in a database, nil if none.
func getent(t *testing.T, db, name string) []string {
	t.Helper()
	out, err := exec.Command("getent", db, name).Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), ":")
}

// checkELF: a static executable for the architecture.
func checkELF(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, want)
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: linked against %v, want a static binary (CGO_ENABLED=0)", path, libs)
	}
}

// checkRewritten: the packaged files name the package's binary, and none
// but the manual the source install's.
func checkRewritten(t *testing.T, root, pkgBin string) {
	t.Helper()
	src, _ := buildPaths(t)
	names := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "/usr/bin/banpush") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		// The manual (README.md, docs/) covers both installs, and says
		// which path each one uses.
		manual := strings.HasPrefix(rel, "usr/share/doc/banpush/") && strings.HasSuffix(rel, ".md")
		if bytes.Contains(b, []byte(src)) && !manual {
			t.Errorf("packaged /%s names %s", rel, src)
		}
		if bytes.Contains(b, []byte(pkgBin)) {
			names++
		}
		return nil
	})
	for _, f := range []string{"etc/fail2ban/action.d/banpush.conf", "lib/systemd/system/banpush-flush.service"} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); !bytes.Contains(b, []byte(pkgBin)) {
			t.Errorf("packaged /%s does not name %s", f, pkgBin)
		}
	}
	if names == 0 {
		t.Errorf("no packaged file names %s", pkgBin)
	}
}

// lintianTag returns the tag of a lintian line ("E: banpush: TAG ...").
func lintianTag(line string) (string, bool) {
	if len(line) < 3 || line[1] != ':' || !strings.Contains("EWIPXO", line[:1]) {
		return "", false
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", false
	}
	if line[0] == 'I' || line[0] == 'P' || line[0] == 'X' || line[0] == 'O' {
		return "", false // information, pedantic, experimental, overridden
	}
	return f[2], true
}
