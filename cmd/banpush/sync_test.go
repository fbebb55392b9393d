package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// syncBanWant is a ban as fail2ban holds it, as sync must send it.
type syncBanWant struct {
	jail          string
	time, bantime int64
}

// TestSyncNewPeer is the acceptance of sync, with a real fail2ban and real
// sshd receivers: h1 holds 50 active bans (25 permanent, 25 with about an
// hour left; one address in both jails) and 5 that ended; a peer h4 added
// with 'peers add' and 'sync h4' ends with exactly the 50, one line each,
// with fail2ban's start time and bantime, and the peer h1 already had gets
// none of them again.
//
// The bans are made with 'set JAIL banip', then fail2ban is stopped, their
// start times are moved back in its database (python3's sqlite3, for this
// test only) and fail2ban restores them at its next start, as after a
// reboot: restored bans are never pushed (norestored), which is what
// sync is for. fail2ban and banpush run with TZ=America/New_York, since
// fail2ban prints local times.
func TestSyncNewPeer(t *testing.T) {
	testenv.Slow(t)
	testenv.NeedAll(t, testenv.Fail2ban(), testenv.OpenSSH(), []testenv.Requirement{testenv.Command("python3", "python3")})
	t.Setenv("TZ", "America/New_York")
	c := newCluster(t, 1)
	conf := f2bConfDir(t, `[hour]
enabled = true
filter = sshd
backend = polling
logpath = $TMP/auth.log
bantime = 4h
action = dummy[target="$TMP/dummy-hour"]
         banpush[banpush=/bin/true]

[perm]
enabled = true
filter = sshd
backend = polling
logpath = $TMP/auth.log
bantime = -1
action = dummy[target="$TMP/dummy-perm"]
         banpush[banpush=/bin/true]

[banpush]
logpath = $TMP/received.log
`)
	dir := filepath.Dir(conf)
	sock := filepath.Join(dir, "fail2ban.sock")
	f := f2btest.Start(t, conf, dir)

	now := time.Now().Unix()
	want := map[string]syncBanWant{}
	var rows strings.Builder // ip jail timeofban bantime, for the database
	ban := func(jail, addr string, tob, bantime int64) {
		if out := f.Client("set", jail, "banip", addr); strings.TrimSpace(out) != "1" {
			t.Fatalf("set %s banip %s: %q", jail, addr, out)
		}
		fmt.Fprintf(&rows, "%s %s %d %d\n", addr, jail, tob, bantime)
	}
	var perm []string
	for i := 1; i <= 25; i++ {
		a := fmt.Sprintf("203.0.113.%d", i)
		perm = append(perm, a)
		tob := now - 20*3600 + int64(i)
		ban("perm", a, tob, -1)
		want[a] = syncBanWant{"perm", tob, -1}
	}
	for i, a := range docAddrs(1, 25) {
		tob := now - 3*3600 - int64(i) // about an hour left
		ban("hour", a, tob, 4*3600)
		want[a] = syncBanWant{"hour", tob, 4 * 3600}
	}
	// Banned in both jails: the permanent ban wins.
	ban("hour", perm[0], now-3*3600, 4*3600)
	// Ended an hour ago: fail2ban does not restore them.
	expired := docAddrs(100, 5)
	for _, a := range expired {
		ban("hour", a, now-5*3600, 4*3600)
	}
	f.Stop()
	py := exec.Command("python3", "-c", `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for line in sys.stdin:
    ip, jail, tob, bantime = line.split()
    for table in ("bans", "bips"):
        n = db.execute("UPDATE " + table + " SET timeofban = ?, bantime = ? WHERE ip = ? AND jail = ?",
                       (int(tob), int(bantime), ip, jail)).rowcount
        if n != 1:
            sys.exit("%s: %d rows for %s in %s" % (table, n, ip, jail))
db.commit()
`, filepath.Join(dir, "fail2ban.sqlite3"))
	py.Stdin = strings.NewReader(rows.String())
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("rewriting fail2ban's database: %v\n%s", err, out)
	}
	f = f2btest.Start(t, conf, dir)
	f.WaitFor("the bans to be restored", func() bool {
		return strings.Count(f.Client("get", "hour", "banip", "--with-time"), "\n") >= 26 &&
			strings.Count(f.Client("get", "perm", "banip", "--with-time"), "\n") >= 25
	})

	// A dry run shows the 50, with fail2ban's times read in its zone.
	out := c.run(nil, "--fail2ban-socket", sock, "sync", "--dry-run", "--json")
	rep := decodeJSON[syncReport](t, "sync --dry-run --json", out)
	if len(rep.Bans) != 50 || rep.Duplicates != 1 || rep.Expired != 0 || len(rep.Peers) != 1 || rep.Peers[0].Peer != "peer1" {
		t.Fatalf("dry run: %d bans, %d duplicates, %d expired, peers %+v; want 50, 1, 0, [peer1]", len(rep.Bans), rep.Duplicates, rep.Expired, rep.Peers)
	}
	for _, b := range rep.Bans {
		w := want[b.Addr]
		if b.Jail != w.jail || b.Time != w.time || b.BanTime != w.bantime {
			t.Errorf("dry run: %s %s time=%d bantime=%d; fail2ban holds %s time=%d bantime=%d", b.Addr, b.Jail, b.Time, b.BanTime, w.jail, w.time, w.bantime)
		}
		if left := w.time + w.bantime - time.Now().Unix(); w.bantime > 0 && (b.Remaining < left-60 || b.Remaining > left+60 || b.Remaining > 3600) {
			t.Errorf("dry run: %s has %d s left, want about %d", b.Addr, b.Remaining, left)
		}
	}

	// h4 joins.
	h4 := &peer{name: "h4", log: filepath.Join(sshdtest.AccountDir(t), "h4.log")}
	line := c.run(nil, "authorize", "--peer", "h1", "--log", h4.log, "--binary", c.bin, c.pub)
	h4.sshd = sshdtest.Start(t, sshdtest.Config{AuthorizedKeys: line})
	writeFile(t, c.knownHost, mustRead(t, c.knownHost)+h4.sshd.KnownHostsLines())
	_, code, stderr := c.runCode("peers", "add", "h4", "--host", h4.sshd.Host, "--port", strconv.Itoa(h4.sshd.Port))
	if code != 0 || !strings.Contains(stderr, "banpush: hint: run 'banpush sync h4'") {
		t.Fatalf("peers add h4: exit %d, stderr:\n%s", code, stderr)
	}
	out = c.run(nil, "--fail2ban-socket", sock, "sync", "h4")
	if !strings.Contains(out, "h4") || !strings.Contains(out, "50") || strings.Contains(out, "peer1") {
		t.Errorf("sync h4 printed:\n%s", out)
	}
	var addrs []string
	for a := range want {
		addrs = append(addrs, a)
	}
	c.waitLogged([]*peer{h4}, addrs, 30*time.Second)
	c.stopSender()

	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(mustRead(t, h4.log), "\n"), "\n") {
		fields := map[string]string{}
		f := strings.Fields(l)
		if len(f) < 4 || f[1]+" "+f[2] != "banpush: ban" {
			t.Fatalf("h4: foreign line %q", l)
		}
		for _, kv := range f[4:] {
			k, v, _ := strings.Cut(kv, "=")
			fields[k] = v
		}
		a := f[3]
		got[a]++
		w, ok := want[a]
		if !ok {
			t.Errorf("h4 got %s, which h1 does not hold (expired: %v)", a, expired)
			continue
		}
		if wl := fmt.Sprintf("peer=h1 jail=%s time=%d bantime=%d", w.jail, w.time, w.bantime); fields["peer"] != "h1" || fields["jail"] != w.jail ||
			fields["time"] != strconv.FormatInt(w.time, 10) || fields["bantime"] != strconv.FormatInt(w.bantime, 10) {
			t.Errorf("h4: %q, want %s", l, wl)
		}
	}
	for a := range want {
		if got[a] != 1 {
			t.Errorf("h4 has %d lines for %s, want 1", got[a], a)
		}
	}
	if len(got) != 50 {
		t.Errorf("h4 has %d addresses, want 50", len(got))
	}
	if n := len(c.peers[0].logged(t)); n != 0 {
		t.Errorf("peer1 got %d bans from 'sync h4', want none", n)
	}

	// fail2ban stopped: exit 69, nothing queued.
	f.Stop()
	if _, code, stderr := c.runCode("--fail2ban-socket", sock, "sync"); code != exitUnavailable || !strings.Contains(stderr, "no fail2ban server answers") {
		t.Errorf("sync with fail2ban stopped: exit %d, want %d; stderr:\n%s", code, exitUnavailable, stderr)
	}
}

// fakeFail2banClient puts on PATH a fail2ban-client that answers as
// fail2ban 1.0.2 does: a status with the jail sshd, which carries the
// banpush action, and its ban list.
func fakeFail2banClient(t *testing.T, banList string) {
	t.Helper()
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "bans"), banList)
	script := `#!/bin/sh
case "$*" in
*" status") printf 'Status\n|- Number of jail:\t1\n` + "`" + `- Jail list:\tsshd\n' ;;
*" get sshd actions") printf 'The jail sshd has the following actions:\niptables-multiport, banpush\n' ;;
*" get sshd banip --with-time") cat "$(dirname "$0")/bans" ;;
*) exit 255 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "fail2ban-client"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestSyncQueues: sync queues each ban for the peers named only, or once
// for every peer, and leaves the ended ones out. The sender lock is held,
// so that no sender starts.
func TestSyncQueues(t *testing.T) {
	t.Setenv("TZ", "UTC")
	fakeFail2banClient(t, "203.0.113.1 \t2020-01-01 00:00:00 + -1 = 9999-12-31 23:59:59\n"+
		"203.0.113.2 \t2020-01-01 00:00:00 + 600 = 2020-01-01 00:10:00\n"+
		"2001:db8::1 \t2020-01-01 00:00:00 + 2000000000 = 2083-05-18 03:33:20\n")
	dir := t.TempDir()
	inv := filepath.Join(dir, "peers")
	writeTestFile(t, inv, "Host web2\n    HostName 192.0.2.11\nHost web3\n    HostName 192.0.2.12\n")
	sp := filepath.Join(dir, "spool")
	s, err := spool.Open(sp, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, ok, err := sender.TryLock(s)
	if err != nil || !ok {
		t.Fatalf("sender lock: %v, %v", ok, err)
	}
	defer l.Release()
	sock := filepath.Join(dir, "f2b.sock")
	writeTestFile(t, sock, "")
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"--inventory", inv, "--spool", sp, "--self", "web1", "--fail2ban-socket", sock}, args...), &Env{
			Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
			Getenv: func(string) string { return "" }, Now: time.Now,
		})
		if code != 0 {
			t.Fatalf("banpush %v: exit %d\n%s", args, code, stderr.String())
		}
		return stdout.String()
	}
	pending := func(peer string) int {
		t.Helper()
		n, _, err := s.Pending(peer)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	out := run("sync", "web3")
	if want := "PEER  QUEUED\nweb3  2\n"; out != want {
		t.Errorf("sync web3 printed %q, want %q", out, want)
	}
	if a, b := pending("web2"), pending("web3"); a != 0 || b != 2 {
		t.Errorf("after sync web3: web2 has %d queued, web3 %d; want 0, 2", a, b)
	}
	out = run("sync")
	if want := "PEER  QUEUED\nweb2  2\nweb3  2\n"; out != want {
		t.Errorf("sync printed %q, want %q", out, want)
	}
	if a, b := pending("web2"), pending("web3"); a != 2 || b != 4 {
		t.Errorf("after sync: web2 has %d queued, web3 %d; want 2, 4", a, b)
	}
	// A peer added later gets the bans queued for every peer, not those
	// queued for web3 alone.
	if n := pending("web4"); n != 2 {
		t.Errorf("web4 has %d queued, want 2", n)
	}
}
