package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestQuorumTrust: a receiver whose real fail2ban runs the banpush and
// banpush-quorum jails from contrib, and three pushing hosts through real
// sshd: host01 and host02 authorized with --trust quorum (--quorum 2),
// host03 with --trust full.
//   - host01 pushes X 50 times: one report line, and X is not banned;
//   - host02 pushes X: X is banned by the quorum jail;
//   - host03 pushes Y once: Y is banned by the banpush jail at once;
//   - host01 reports Z alone, fail2ban restarts: Z is still not banned.
//
// Each "not banned" is checked after a later address, reported by both
// quorum hosts, was banned: the quorum jail had read past the lines then.
func TestQuorumTrust(t *testing.T) {
	testenv.Need(t, testenv.Fail2ban()...)
	t.Parallel()
	recv, hosts := newFleet(t, 3, "host")
	a, b, c := hosts[0], hosts[1], hosts[2]
	var keys strings.Builder
	for i, h := range hosts {
		args := []string{"authorize", "--peer", fmt.Sprintf("host%02d", i+1), "--log", recv.log, "--binary", h.bin}
		if h != c {
			args = append(args, "--trust", "quorum")
		}
		keys.WriteString(h.run(nil, append(args, h.pub)...))
	}
	recv.sshd.SetAuthorizedKeys(keys.String())
	writeTestFile(t, recv.log, "")
	sshdtest.GiveAccount(t, recv.log)

	conf := f2bConfDir(t, fmt.Sprintf(`[banpush]
logpath = %[1]s
action = dummy[target="$TMP/dummy-full"]

[banpush-quorum]
enabled = true
logpath = %[1]s
action = dummy[target="$TMP/dummy-quorum"]
`, recv.log))
	dir := filepath.Dir(conf)
	f2b := f2btest.Start(t, conf, dir)
	banned := func(jail, addr string) bool {
		for _, line := range strings.Split(f2b.Client("status", jail), "\n") {
			if _, list, ok := strings.Cut(line, "Banned IP list:"); ok {
				return slices.Contains(strings.Fields(list), addr)
			}
		}
		return false
	}
	push := func(h *cluster, addr string) {
		t.Helper()
		h.run(nil, "push", "--wait", addr)
	}
	// agreed has both quorum hosts report addr and waits for its ban.
	agreed := func(addr string) {
		t.Helper()
		push(a, addr)
		push(b, addr)
		f2b.WaitFor("the quorum ban of "+addr, func() bool { return banned("banpush-quorum", addr) })
	}
	const x, y, z = "203.0.113.71", "203.0.113.72", "203.0.113.73"

	for range 50 {
		push(a, x)
	}
	if n := reportLines(t, recv.log, "host01", x); n != 1 {
		t.Fatalf("%d report lines of host01 for %s after 50 pushes, want 1", n, x)
	}
	agreed("203.0.113.81")
	if banned("banpush-quorum", x) || banned("banpush", x) {
		t.Fatalf("%s banned on one quorum peer's reports", x)
	}
	push(b, x)
	f2b.WaitFor("the ban of "+x+" on two peers' reports", func() bool { return banned("banpush-quorum", x) })

	push(c, y)
	f2b.WaitFor("the ban of "+y+" from a full-trust peer", func() bool { return banned("banpush", y) })
	if banned("banpush-quorum", y) {
		t.Errorf("%s from a full-trust peer counted toward the quorum", y)
	}

	push(a, z)
	agreed("203.0.113.82")
	f2b.Stop()
	f2b = f2btest.Start(t, conf, dir)
	agreed("203.0.113.83")
	if banned("banpush-quorum", z) || banned("banpush", z) {
		t.Errorf("%s, reported by host01 alone, banned after fail2ban restarted", z)
	}
	if n := strings.Count(readFile(t, recv.log), " banpush: ban "); n != 1 {
		t.Errorf("%d ban lines in the log, want 1 (host03's)", n)
	}
	if n := strings.Count(readFile(t, recv.log), " "+logline.Quorum.Tag()+" "+x+" "); n != 1 {
		t.Errorf("%d quorum lines for %s, want 1 (host02's report)", n, x)
	}
	t.Logf("50 pushes of one address from one quorum peer: %d report line; banned once a second peer agreed", reportLines(t, recv.log, "host01", x))
}

// reportLines counts peer's report lines for addr in log.
func reportLines(t *testing.T, log, peer, addr string) int {
	t.Helper()
	return strings.Count(readFile(t, log), " "+logline.Report.Tag()+" "+addr+" peer="+peer+"\n")
}

// TestQuorumConcurrentReceivers: 20 receiver processes of one quorum peer
// started at once with the same address write one report line: the
// memory's updates are not lost between processes.
func TestQuorumConcurrentReceivers(t *testing.T) {
	bin := banpushBin(t)
	log := filepath.Join(t.TempDir(), "received.log")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// At most 4 sessions of one peer run at once; the others
			// are told to try again (exit 75), as a sender would.
			for {
				cmd := exec.CommandContext(ctx, bin, "receive", "--peer", "web1", "--log", log, "--trust", "quorum")
				cmd.Env = append(os.Environ(), "SSH_ORIGINAL_COMMAND=banpush-v1 ban", "SSH_CONNECTION=198.51.100.99 40000 192.0.2.1 22", "HOME="+filepath.Dir(log))
				cmd.Stdin = strings.NewReader("203.0.113.7\n")
				out, err := cmd.CombinedOutput()
				if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitTemp && ctx.Err() == nil {
					continue
				}
				if err != nil || !strings.Contains(string(out), "accepted=1") {
					errs <- fmt.Errorf("receive: %v: %s", err, out)
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := reportLines(t, log, "web1", "203.0.113.7"); n != 1 {
		t.Errorf("%d report lines from 20 receivers at once, want 1", n)
	}
}
