// Package netns gives a test network namespaces of its own, so that a
// test of firewall rules changes no ruleset but the namespace's: each is
// held by a helper process (sleep) cloned into a new network namespace,
// killed when the test ends and, if the test binary dies first, with it
// (Pdeathsig). The namespace, its interfaces and its nftables tables go
// with the helper: nothing is left behind, not even a name under
// /run/netns.
//
// It trusts its caller. It is for tests only: it reports through
// testing.TB, and needs root (testenv.Root), nsenter (util-linux) and ip
// (iproute2), which it asks for with testenv.Need.
package netns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/sys/unix"
)

// NS is a network namespace of the test's own.
type NS struct {
	pid int
	f   *os.File // /proc/PID/ns/net, open
}

// Needs are what New needs from the machine.
func Needs() []testenv.Requirement {
	return []testenv.Requirement{
		testenv.Root("makes network namespaces"),
		testenv.Command("nsenter", "util-linux"),
		testenv.Command("ip", "iproute2"),
	}
}

// New makes a network namespace with its loopback up, for the test's
// lifetime. It skips the test (fails it, in CI) without what Needs lists.
func New(t testing.TB) *NS {
	t.Helper()
	testenv.Need(t, Needs()...)
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started the child ends: start
	// it from a thread that lives as long as the test binary.
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread stays for the binary's life
		errc <- cmd.Start()
		select {}
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns: starting the namespace's process: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n := &NS{pid: cmd.Process.Pid}
	t.Cleanup(func() {
		if n.f != nil {
			n.f.Close()
		}
		cmd.Process.Kill()
		<-done
	})
	f, err := os.Open(n.Path())
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	n.f = f
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// PID is the process that holds the namespace.
func (n *NS) PID() int { return n.pid }

// Path is the namespace's file, /proc/PID/ns/net.
func (n *NS) Path() string { return "/proc/" + strconv.Itoa(n.pid) + "/ns/net" }

// Fd is an open descriptor of the namespace, valid for the test's
// lifetime (for nftables.WithNetNSFd).
func (n *NS) Fd() int { return int(n.f.Fd()) }

// Command is a command that runs in the namespace (nsenter --net).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
}

// Run runs a command in the namespace and returns its output; a failure
// fails the test.
func (n *NS) Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netns: %s %q: %v\n%s", name, args, err, out)
	}
	return out
}

// Link joins a and b with a veth pair, a's end with address pa and b's
// with pb (prefixes of one network, such as 10.0.0.1/24 and 10.0.0.2/24),
// both up.
func Link(t testing.TB, a, b *NS, pa, pb netip.Prefix) {
	t.Helper()
	a.Run(t, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", strconv.Itoa(b.pid))
	for _, s := range []struct {
		ns  *NS
		dev string
		p   netip.Prefix
	}{{a, "veth0", pa}, {b, "veth1", pb}} {
		args := []string{"addr", "add", s.p.String(), "dev", s.dev}
		if s.p.Addr().Is6() {
			args = append(args, "nodad") // usable at once
		}
		s.ns.Run(t, "ip", args...)
		s.ns.Run(t, "ip", "link", "set", s.dev, "up")
	}
}

// Do runs fn on a thread of its own that has joined the namespace, and
// returns its error: sockets fn opens (net.Listen, net.Dial) are the
// namespace's, and stay so after Do returns. The thread ends with fn,
// never going back to the test's other goroutines.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine's end takes the thread with it.
		runtime.LockOSThread()
		if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
