package f2blog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/testkit/f2btest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"github.com/rogpeppe/go-internal/txtar"
)

// fail2banConf is a private fail2ban configuration: three jails on logs
// of the test's, with one filter; "test" bans at its third failure and
// its action only records each ban (one line per actionban run).
const fail2banConf = `
-- fail2ban.conf --
[Definition]
loglevel = INFO
allowipv6 = auto
-- jail.conf --
[DEFAULT]
backend = polling
usedns = no
maxretry = 3
findtime = 10m
bantime = 1h
filter = test

[test]
enabled = true
logpath = $DIR/test.log
action = count[target="$DIR/actionban"]

[web.auth-2]
enabled = true
logpath = $DIR/web.log

[other]
enabled = true
logpath = $DIR/other.log
-- filter.d/test.conf --
[Definition]
failregex = ^ test: failure from <ADDR>$
-- action.d/count.conf --
[Definition]
actionban = echo <ip> >> <target>
`

// written is a failure the test wrote to a jail's log.
type written struct {
	jail string
	addr netip.Addr // as fail2ban reports it
	time time.Time  // in the line, to the second
	at   time.Time  // when it was written
}

// TestFollowFail2ban: the real fail2ban (1.0.2 on Debian 12) logs a Found
// line for every failure it counts, the failures of an address it has
// banned already included, while the ban's action runs once; the
// Follower reads every one of them, with its jail, address and time,
// once, across a rotation of fail2ban's log (rename, then 'fail2ban-client
// flushlogs', as logrotate's fail2ban file does). It logs how long
// fail2ban took from a failure written to its Found line.
func TestFollowFail2ban(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, testenv.Fail2ban()...)
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	writeTree(t, conf, strings.ReplaceAll(fail2banConf, "$DIR", dir))
	for _, l := range []string{"test.log", "web.log", "other.log"} {
		appendLog(t, filepath.Join(dir, l), "")
	}
	srv := f2btest.Start(t, conf, dir)
	ctx := context.Background()

	log, err := (&f2b.Client{Socket: srv.Socket}).LogTarget(ctx)
	if err != nil || log != srv.Log {
		t.Fatalf("LogTarget: %q, %v; want %s", log, err, srv.Log)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := Open(ctx, Config{Log: log, Cursor: filepath.Join(state, "cursor"), Jails: []string{"test", "web.auth-2"}, MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.FirstStart() {
		t.Fatal("FirstStart false")
	}

	var all []written
	fail := func(jail, addr string) {
		t.Helper()
		now := time.Now()
		sec := now.Truncate(time.Second)
		appendLog(t, filepath.Join(dir, map[string]string{"test": "test.log", "web.auth-2": "web.log", "other": "other.log"}[jail]),
			sec.Format(time.DateTime)+" test: failure from "+addr+"\n")
		if jail != "other" {
			all = append(all, written{jail: jail, addr: netip.MustParseAddr(addr).Unmap(), time: sec, at: now})
		}
	}
	totalFailed := func(jail string) int {
		var n int
		for _, l := range strings.Split(srv.Client("status", jail), "\n") {
			if _, v, ok := strings.Cut(l, "Total failed:"); ok {
				fmt.Sscan(v, &n)
			}
		}
		return n
	}
	read := newCollector(t, f)

	// Failures of IPv4 and IPv6 addresses (one written IPv4-mapped, one
	// not compressed) in two followed jails and one not followed; four of
	// 203.0.113.7, over maxretry.
	for _, a := range []string{"203.0.113.7", "2001:db8::7", "203.0.113.7", "::ffff:198.51.100.9", "203.0.113.7", "2001:DB8:0:0::8", "203.0.113.7", "2001:db8::7"} {
		fail("test", a)
	}
	fail("web.auth-2", "192.0.2.1")
	fail("web.auth-2", "2001:db8::1")
	fail("other", "192.0.2.200")
	srv.WaitFor("the ban of 203.0.113.7", func() bool { return strings.Contains(srv.Client("status", "test"), "203.0.113.7") })
	// Two more failures of 203.0.113.7, banned now: fail2ban counts them
	// and logs them as found, and runs no action for them.
	fail("test", "203.0.113.7")
	fail("test", "203.0.113.7")
	srv.WaitFor("fail2ban to count every failure", func() bool {
		return totalFailed("test") == 10 && totalFailed("web.auth-2") == 2 && totalFailed("other") == 1
	})
	read.until(len(all))
	if b, err := f.Read(); err != nil || len(b.Failures) != 0 {
		t.Fatalf("after every failure was read: %+v, %v; want nothing more", b, err)
	}
	if bans, _ := os.ReadFile(filepath.Join(dir, "actionban")); string(bans) != "203.0.113.7\n" {
		t.Errorf("actionban ran for %q; want once, for 203.0.113.7 (6 failures)", bans)
	}

	// Rotation: a failure logged before the rename and not read yet, one
	// fail2ban logs to the renamed file before it reopens its log, one
	// after.
	foundIn := func(path, addr string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(path)
			return strings.Contains(string(b), "] Found "+addr+" - ")
		}
	}
	fail("test", "192.0.2.10")
	srv.WaitFor("Found 192.0.2.10", foundIn(log, "192.0.2.10"))
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	fail("test", "192.0.2.11")
	srv.WaitFor("Found 192.0.2.11 in the renamed log", foundIn(log+".1", "192.0.2.11"))
	if out := srv.Client("flushlogs"); !strings.Contains(out, "rolled over") {
		t.Fatalf("flushlogs: %s", out)
	}
	fail("test", "2001:db8::12")
	srv.WaitFor("Found 2001:db8::12 in the new log", foundIn(log, "2001:db8::12"))
	if got := read.until(len(all)); !slices.Contains(got, logtail.StartRotated) {
		t.Errorf("the reads across the rotation began %v; want one %s", got, logtail.StartRotated)
	}
	if b, err := f.Read(); err != nil || len(b.Failures) != 0 {
		t.Fatalf("after the rotation: %+v, %v; want nothing more", b, err)
	}

	// Every failure written, once, in order within each jail.
	for _, jail := range []string{"test", "web.auth-2"} {
		var want, got []string
		for _, w := range all {
			if w.jail == jail {
				want = append(want, w.addr.String()+" "+w.time.Format(time.DateTime))
			}
		}
		for _, fl := range read.got {
			if fl.Jail == jail {
				got = append(got, fl.Addr.String()+" "+fl.Time.Format(time.DateTime))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("jail %s: got\n%s\nwant\n%s", jail, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	logLatency(t, all, []string{log + ".1", log}, "203.0.113.7")

	// A target that is not a file cannot be followed.
	srv.Client("set", "logtarget", "STDERR")
	if _, err := (&f2b.Client{Socket: srv.Socket}).LogTarget(ctx); !errors.Is(err, f2b.ErrLogNotFile) {
		t.Errorf("LogTarget with STDERR: %v, want f2b.ErrLogNotFile", err)
	}
}

// collector reads a Follower's batches, committing each.
type collector struct {
	t   *testing.T
	f   *Follower
	got []Failure
}

func newCollector(t *testing.T, f *Follower) *collector { return &collector{t: t, f: f} }

// until reads until it has n failures in all (or fails the test after
// 30 s), and returns where each read began.
func (c *collector) until(n int) []logtail.Start {
	c.t.Helper()
	var starts []logtail.Start
	deadline := time.Now().Add(30 * time.Second)
	for len(c.got) < n {
		b, err := c.f.Read()
		if err != nil {
			c.t.Fatal(err)
		}
		starts = append(starts, b.Start)
		c.got = append(c.got, b.Failures...)
		if err := c.f.Commit(b); err != nil {
			c.t.Fatal(err)
		}
		if b.More {
			continue
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d failures read in 30 s, want %d: %v", len(c.got), n, c.got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return starts
}

// logLatency logs how long fail2ban took from each failure written to its
// Found line (the line's own stamp, to the millisecond), and what else
// fail2ban logged of the address it banned.
func logLatency(t *testing.T, all []written, logs []string, banned string) {
	t.Helper()
	type key struct {
		jail string
		addr netip.Addr
	}
	stamps := map[key][]time.Time{}
	for _, path := range logs {
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fl, ok := ParseFound(sc.Bytes())
			if !ok && strings.Contains(sc.Text(), " "+banned) {
				t.Logf("fail2ban: %s", sc.Text())
			}
			if ok {
				st, err := time.ParseInLocation("2006-01-02 15:04:05,000", sc.Text()[:23], time.Local)
				if err != nil {
					t.Fatal(err)
				}
				k := key{fl.Jail, fl.Addr}
				stamps[k] = append(stamps[k], st)
			}
		}
		fh.Close()
	}
	var found []time.Duration
	for _, w := range all {
		k := key{w.jail, w.addr}
		if len(stamps[k]) == 0 {
			t.Fatalf("no Found line for %v", w)
		}
		found = append(found, stamps[k][0].Sub(w.at))
		stamps[k] = stamps[k][1:]
	}
	t.Logf("fail2ban: failure written -> Found logged (polling backend): %s", spread(found))
}

// spread is the median and the maximum of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%d failures, median %s, max %s", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// writeTree writes the files of the txtar archive tree into dir.
func writeTree(t *testing.T, dir, tree string) {
	t.Helper()
	for _, f := range txtar.Parse([]byte(tree)).Files {
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
