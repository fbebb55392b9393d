// Package testenv is the one place where banpush's tests decide whether they
// can run here: whether they need root, a real daemon or a tool from a
// Debian package, and whether they belong to the fast tier.
//
// A test that needs something missing is skipped with a message that names
// the package to install, except when the CI environment variable is set:
// then it fails, so that CI (which installs everything) can never pass by
// skipping. Tests of the full tier only (the multi-second fault and
// end-to-end suites) call Slow and are skipped by 'go test -short'.
//
// The sandbox. Run as root, a test binary that calls Sandbox from its
// TestMain runs its tests as the child of a process 1 of its own, in new
// PID, mount, network, UTS and IPC namespaces, that dies with the binary
// (SIGKILL on the parent's death). The kernel then kills every process the
// tests started (sshd and its sessions, fail2ban, detached senders), and
// the mounts and network namespaces go with them. The machine's file
// systems are seen through overlays kept in memory: a test may install a
// package, add an account or write under /etc, and nothing of it reaches
// the disk. Only the go command's build cache and go test's own directory
// for the binary are written through. Each binary has its own loopback, so
// tests of two checkouts running at once share no port, address or
// firewall. What a killed binary leaves behind is therefore nothing.
//
// It is for tests only: it reads the environment and reports through
// testing.TB.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Requirement is something a test needs from the machine.
type Requirement struct {
	what string      // what is needed, for the message
	have func() bool // whether the machine has it
	// daemon marks sshd and fail2ban: a test that needs one starts it
	// (or its Python), which takes seconds, so it is of the full tier.
	daemon bool
}

// Root: the test runs as root (it mounts, creates namespaces or accounts).
func Root(why string) Requirement {
	return Requirement{what: "root (" + why + ")", have: func() bool { return os.Geteuid() == 0 }}
}

// Command: a program on PATH, or at an absolute path, from a Debian package.
// sshd and fail2ban's programs make the test one of the full tier (Slow).
func Command(name, pkg string) Requirement {
	daemon := name == SSHD || strings.HasPrefix(name, "fail2ban-")
	return Requirement{what: name + " (apt-get install " + pkg + ")", daemon: daemon, have: func() bool {
		if strings.HasPrefix(name, "/") {
			fi, err := os.Stat(name)
			return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
		}
		_, err := exec.LookPath(name)
		return err == nil
	}}
}

// SSHD is the OpenSSH server binary tests run; sshd insists on an absolute
// path.
const SSHD = "/usr/sbin/sshd"

// OpenSSH: a real sshd, and the ssh and ssh-keygen that talk to it.
func OpenSSH() []Requirement {
	return []Requirement{
		Command(SSHD, "openssh-server"),
		Command("ssh", "openssh-client"),
		Command("ssh-keygen", "openssh-client"),
	}
}

// Fail2ban: the real fail2ban server, client and regex tester.
func Fail2ban() []Requirement {
	return []Requirement{
		Command("fail2ban-server", "fail2ban"),
		Command("fail2ban-client", "fail2ban"),
		Command("fail2ban-regex", "fail2ban"),
	}
}

// CI reports whether the tests run in CI, where nothing may be skipped for
// a missing dependency.
func CI() bool { return os.Getenv("CI") != "" }

// Need skips the test (fails it, in CI) unless the machine meets every
// requirement; the message lists what is missing. A test that needs sshd
// or fail2ban is of the full tier: 'go test -short' skips it (Slow).
func Need(t testing.TB, reqs ...Requirement) {
	t.Helper()
	var missing []string
	for _, r := range reqs {
		if r.daemon {
			Slow(t)
		}
		if !r.have() {
			missing = append(missing, r.what)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ")
	if CI() {
		t.Fatal(msg + " (CI is set: .ci/run installs what the tests need)")
	}
	t.Skip(msg)
}

// NeedAll is Need for groups of requirements, such as OpenSSH().
func NeedAll(t testing.TB, groups ...[]Requirement) {
	t.Helper()
	var all []Requirement
	for _, g := range groups {
		all = append(all, g...)
	}
	Need(t, all...)
}

// Slow marks a test of the full tier: one that takes seconds, such as the
// fault and end-to-end suites, or starts sshd or fail2ban (Need does it for
// those). 'go test -short' skips it; .ci/test runs it.
func Slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: full tier only (runs without -short)", t.Name())
	}
}

// Main is the TestMain of a package whose tests need nothing else: they
// run in the sandbox when the binary can make one (Sandbox), else here.
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	if code, ran := Sandbox(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
