package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// cluster is one pushing host and n receiving peers, each a real OpenSSH
// sshd on 127.0.0.1 whose authorized_keys line came from 'banpush
// authorize', as the README tells an administrator to set it up.
type cluster struct {
	t         *testing.T
	bin       string // banpush
	dir       string
	inventory string
	spool     string
	key       string // the pusher's private key
	pub       string
	knownHost string
	peers     []*peer
}

type peer struct {
	name string
	sshd *sshdtest.Server
	log  string
}

// banpushBin is the banpush binary the cluster tests run, on both sides.
func banpushBin(t *testing.T) string {
	t.Helper()
	return builtBanpush(t)
}

func newCluster(t *testing.T, n int, extraSSHD ...string) *cluster {
	t.Helper()
	sshdtest.Require(t)
	c := &cluster{t: t, bin: banpushBin(t), dir: t.TempDir()}
	stopProcsAtEnd(t)
	c.inventory = filepath.Join(c.dir, "peers")
	c.spool = filepath.Join(c.dir, "spool")
	c.knownHost = filepath.Join(c.dir, "known_hosts")
	c.key, c.pub, _ = sshdtest.NewKey(t, c.dir, "pusher", "")
	var inv, kh strings.Builder
	fmt.Fprintf(&inv, "# test inventory\nHost *\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  ConnectTimeout 2\n\n",
		loginUser(t), c.key, c.knownHost)
	for i := 0; i < n; i++ {
		p := &peer{name: fmt.Sprintf("peer%d", i+1)}
		p.log = filepath.Join(sshdtest.AccountDir(t), p.name+".log")
		line := c.run(nil, "authorize", "--peer", "pusher", "--log", p.log, "--binary", c.bin, c.pub)
		p.sshd = sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: line, Extra: extraSSHD})
		kh.WriteString(p.sshd.KnownHostsLines())
		fmt.Fprintf(&inv, "Host %s\n  HostName %s\n  Port %d\n\n", p.name, p.sshd.Host, p.sshd.Port)
		c.peers = append(c.peers, p)
	}
	writeFile(t, c.inventory, inv.String())
	writeFile(t, c.knownHost, kh.String())
	t.Cleanup(c.stopSender)
	return c
}

// loginUser is the account the tests' sshd log the pusher in as, which
// runs 'banpush receive' (sshdtest.LoginAccount).
func loginUser(t *testing.T) string {
	t.Helper()
	return sshdtest.LoginAccount(t).Name
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cmd returns banpush with args, set up for this cluster.
func (c *cluster) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "BANPUSH_INVENTORY="+c.inventory, "BANPUSH_SPOOL="+c.spool)
	return cmd
}

// run runs banpush and returns its stdout; wantCode nil means 0.
func (c *cluster) run(wantCode *int, args ...string) string {
	c.t.Helper()
	out, code, stderr := c.runCode(args...)
	want := 0
	if wantCode != nil {
		want = *wantCode
	}
	if code != want {
		c.t.Fatalf("banpush %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, stderr)
	}
	return out
}

func (c *cluster) runCode(args ...string) (stdout string, code int, stderr string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.cmd(ctx, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), ee.ExitCode(), e.String()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return o.String(), 0, e.String()
}

// logged returns the set of addresses in a peer's log.
func (p *peer) logged(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[1]+" "+f[2] != "banpush: ban" {
			if l != "" {
				t.Fatalf("%s: torn or foreign line %q", p.log, l)
			}
			continue
		}
		got[f[3]]++
	}
	return got
}

// waitLogged waits until every peer in ps has every address in want, and
// returns how long that took. It fails the test after timeout.
func (c *cluster) waitLogged(ps []*peer, want []string, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for {
		missing := 0
		for _, p := range ps {
			got := p.logged(c.t)
			for _, a := range want {
				if got[a] == 0 {
					missing++
				}
			}
		}
		if missing == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("after %s, %d (peer, ban) pairs are missing\nsender log:\n%s", timeout, missing, c.senderLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) senderLog() string {
	b, _ := os.ReadFile(sender.LogPath(c.spool))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stopSender stops every process that may write into the cluster's spool
// (a lingering sender is asked to let go, as flush does) and waits for it,
// so that no process outlives the test or writes into its directory while
// it is removed.
func (c *cluster) stopSender() {
	c.t.Helper()
	if err := stopSpoolProcs(c.spool); err != nil {
		c.t.Error(err)
	}
}

// docAddrs returns n distinct documentation addresses starting at from,
// in canonical form, as receivers write them.
func docAddrs(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		k := from + i
		out[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}).String()
	}
	return out
}

// blackhole accepts TCP connections and never answers, like a peer whose
// sshd hangs (sshdtest's tarpit, on a held port); it returns its port.
func blackhole(t *testing.T) int {
	t.Helper()
	p, err := sshdtest.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Tarpit(false)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		p.Close()
	})
	return p.Number
}
