package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/testkit/netns"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// helperEnv, set, makes TestHelperFollow the engine of a service: in the
// namespace of the file it names, on the log and state of helperLog and
// helperState, until it is killed.
const (
	helperEnv   = "BANPUSH_FIREWALL_TEST_NETNS"
	helperLog   = "BANPUSH_FIREWALL_TEST_LOG"
	helperState = "BANPUSH_FIREWALL_TEST_STATE"
)

// kernelJails are the jails of the kernel tests: banpush and
// banpush-quorum enabled, banpush-fleet not, ignoreip 192.0.2.0/24.
func kernelJails(t testing.TB) []Jail {
	js := contribJails(t, "192.0.2.0/24")
	return js[:2]
}

// TestHelperFollow is the engine of a service killed by TestKernel.
func TestHelperFollow(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("a helper of TestKernel")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := nftset.Open(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Log: os.Getenv(helperLog), State: os.Getenv(helperState), Jails: kernelJails(t)}
	e, _, err := Start(context.Background(), cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	logtail.Follow(context.Background(), 20*time.Millisecond, func(ctx context.Context) error {
		_, err := e.Run(ctx)
		return err
	})
}

// nftCount counts the members of the kernel set as the nft CLI lists them,
// and says whether addr is one.
func nftCount(t *testing.T, ns *netns.NS, addrs ...string) (int, []bool) {
	t.Helper()
	n := 0
	var text string
	for _, set := range []string{nftset.SetV4, nftset.SetV6} {
		out := string(ns.Run(t, "nft", "list", "set", "inet", nftset.Table, set))
		n += strings.Count(out, " expires ")
		text += out
	}
	var in []bool
	for _, a := range addrs {
		in = append(in, strings.Contains(text, " "+a+" timeout") || strings.Contains(text, "{ "+a+" timeout"))
	}
	return n, in
}

// banLines are n ban lines of distinct addresses, half of them IPv6, from
// the given index on, received at.
func banLines(t testing.TB, from, n int, at time.Time) ([][]byte, []string) {
	var ls [][]byte
	var addrs []string
	for i := from; i < from+n; i++ {
		a := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}).String()
		if i%2 == 1 {
			a = fmt.Sprintf("2001:db8::%x", i)
		}
		ls = append(ls, mustLine(t, logline.Ban, at, a+" jail=sshd"))
		addrs = append(addrs, a)
	}
	return ls, addrs
}

// TestKernel, in a network namespace of its own: 1,000 bans appended to
// the log are all in the kernel set after one run, and none of the lines
// that must not ban (ignoreip, reports, a disabled jail's, expired);
// restarts and a reboot put back exactly the bans in force; a service
// killed with SIGKILL loses nothing.
func TestKernel(t *testing.T) {
	testenv.Need(t, testenv.Command("nft", "nftables"))
	ns := netns.New(t)
	set, err := nftset.Open(ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	f := newFixture(t)
	cfg := Config{Log: f.log, State: f.state, Jails: kernelJails(t)}
	recvd := time.Now().Add(-time.Minute)

	e, _, err := Start(context.Background(), cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	bans, addrs := banLines(t, 0, 1000, recvd)
	never := [][]byte{
		mustLine(t, logline.Ban, recvd, "192.0.2.7"),                           // ignoreip
		mustLine(t, logline.Report, recvd, "198.51.100.1"),                     // a report: below the quorum
		mustLine(t, logline.Fleet, recvd, "198.51.100.2 failures=12"),          // banpush-fleet is not enabled
		mustLine(t, logline.Ban, time.Now().Add(-2*time.Hour), "198.51.100.3"), // expired
		mustLine(t, logline.Ban, recvd, "127.0.0.1"),                           // the policy refuses it
	}
	f.append(t, append(append(never, bans...), mustLine(t, logline.Quorum, recvd, "198.51.100.4"))...)
	began := time.Now()
	rep, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// For the record, not a bound (BenchmarkFastPath measures).
	t.Logf("1,000 bans from the log to the kernel set in %v", time.Since(began))
	if rep.Added != 1001 {
		t.Errorf("run: %+v, want 1,001 added", rep)
	}
	n, in := nftCount(t, ns, "203.0.0.0", "2001:db8::3e7", "198.51.100.4", "192.0.2.7", "198.51.100.1", "198.51.100.2", "198.51.100.3")
	if n != 1001 || !in[0] || !in[1] || !in[2] || in[3] || in[4] || in[5] || in[6] {
		t.Fatalf("nft lists %d members (want 1,001); present: %v", n, in)
	}

	// Unbans lift; they are not restored after a reboot.
	f.append(t, mustLine(t, logline.Unban, time.Now(), addrs[0]), mustLine(t, logline.Unban, time.Now(), addrs[1]))
	if rep, err := e.Run(context.Background()); err != nil || rep.Lifted != 2 {
		t.Fatalf("unbans: %+v, %v", rep, err)
	}
	e.Close()

	// A restart changes nothing; a reboot (the table gone) puts back the
	// 999 bans in force in one batch.
	e, rep, err = Start(context.Background(), cfg, set)
	if err != nil || rep.Restored != 0 || rep.Bans != 999 {
		t.Fatalf("restart: %+v, %v", rep, err)
	}
	e.Close()
	if err := set.Remove(); err != nil {
		t.Fatal(err)
	}
	e, rep, err = Start(context.Background(), cfg, set)
	if err != nil || rep.Restored != 999 {
		t.Fatalf("after a reboot: %+v, %v", rep, err)
	}
	n, in = nftCount(t, ns, addrs[0], addrs[1], addrs[2])
	if n != 999 || in[0] || in[1] || !in[2] {
		t.Fatalf("after a reboot nft lists %d members (want 999); present: %v", n, in)
	}
	e.Close()

	// A service killed with SIGKILL, while it follows the log: its
	// successor reads on from the cursor and loses nothing.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFollow$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+ns.Path(), helperLog+"="+f.log, helperState+"="+f.state)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	more, moreAddrs := banLines(t, 1000, 2000, time.Now())
	f.append(t, more[:1000]...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _ := nftCount(t, ns); n > 999 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the service added nothing in 10 s:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.append(t, more[1000:1500]...)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	f.append(t, more[1500:]...)
	e, _, err = Start(context.Background(), cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, _ = nftCount(t, ns)
	ms, err := set.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range ms {
		got[m.Addr.String()] = true
	}
	missing := 0
	for _, a := range append(addrs[2:], moreAddrs...) {
		if !got[a] {
			missing++
		}
	}
	if n != 2999 || missing != 0 {
		t.Fatalf("after SIGKILL and a restart: nft lists %d (want 2,999), %d missing", n, missing)
	}
}
