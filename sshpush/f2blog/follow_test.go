package f2blog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logtail"
)

// now is the tests' clock: the failures' times are near it.
var now = local("2026-12-07 07:00:00")

// foundLine is a Found line as fail2ban 1.0.2 writes it, with its newline.
func foundLine(jail, addr string, t time.Time) string {
	return t.Format("2006-01-02 15:04:05") + ",123 fail2ban.filter         [1234]: INFO    [" + jail + "] Found " + addr + " - " + t.Format(time.DateTime) + "\n"
}

// banLine is fail2ban's Ban line, with its newline.
func banLine(jail, addr string) string {
	return now.Format("2006-01-02 15:04:05") + ",456 fail2ban.actions        [1234]: NOTICE  [" + jail + "] Ban " + addr + "\n"
}

// appendLog appends s to path, creating it (0600) if it is missing.
func appendLog(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// testConfig follows sshd in a log and a state directory of the test's.
func testConfig(t testing.TB) Config {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return Config{Log: filepath.Join(dir, "fail2ban.log"), Cursor: filepath.Join(state, "cursor"), Jails: []string{"sshd"},
		Now: func() time.Time { return now }}
}

func open(t *testing.T, cfg Config) *Follower {
	t.Helper()
	f, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// addrs lists the batch's failures as "jail addr".
func addrs(b Batch) string {
	var s []string
	for _, fl := range b.Failures {
		s = append(s, fl.Jail+" "+fl.Addr.String())
	}
	return strings.Join(s, "|")
}

// TestFollowFirstStart: a first start begins at the end of the log; then
// only the Found lines of the followed jails are failures.
func TestFollowFirstStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jails = []string{"sshd", "postfix"}
	// The last line is being written at the first start: it is read
	// once whole.
	half := foundLine("sshd", "203.0.113.9", now)
	appendLog(t, cfg.Log, foundLine("sshd", "203.0.113.1", now)+banLine("sshd", "203.0.113.1")+half[:60])
	f := open(t, cfg)
	if !f.FirstStart() {
		t.Error("FirstStart false without a cursor")
	}
	if c, err := logtail.LoadCursor(cfg.Cursor); err != nil || c == nil {
		t.Fatalf("the first start did not save its cursor: %v, %v", c, err)
	}
	b, err := f.Read()
	if err != nil || len(b.Failures) != 0 || b.More {
		t.Fatalf("first read: %+v, %v; want nothing of what the log held", b, err)
	}
	appendLog(t, cfg.Log, half[60:]+
		foundLine("sshd", "203.0.113.2", now)+foundLine("nginx", "203.0.113.3", now)+banLine("sshd", "203.0.113.2")+
		foundLine("postfix", "2001:db8::4", now)+foundLine("sshd", "203.0.113.2", now.Add(time.Second)))
	b, err = f.Read()
	if got := addrs(b); err != nil || got != "sshd 203.0.113.9|sshd 203.0.113.2|postfix 2001:db8::4|sshd 203.0.113.2" || b.Lines != 6 || b.Start != logtail.StartContinued {
		t.Fatalf("got %q, %+v, %v; want the four failures of sshd and postfix in six lines", got, b, err)
	}
	if !b.Failures[3].Time.Equal(now.Add(time.Second)) {
		t.Errorf("time %v, want %v", b.Failures[3].Time, now.Add(time.Second))
	}
	if err := f.Commit(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f = open(t, cfg)
	if f.FirstStart() {
		t.Error("FirstStart true with a cursor")
	}
	if b, err := f.Read(); err != nil || len(b.Failures) != 0 || b.Lines != 0 {
		t.Errorf("after the commit: %+v, %v; want nothing", b, err)
	}
}

// TestFollowBatches: a batch holds MaxBatch failures at most; until it is
// committed, every Read (and every restart: a crash) reads it again.
func TestFollowBatches(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatch = 2
	appendLog(t, cfg.Log, "")
	f := open(t, cfg)
	var lines strings.Builder
	for i := 1; i <= 5; i++ {
		lines.WriteString(foundLine("sshd", fmt.Sprintf("192.0.2.%d", i), now))
	}
	appendLog(t, cfg.Log, lines.String())

	b1, err := f.Read()
	if got := addrs(b1); err != nil || got != "sshd 192.0.2.1|sshd 192.0.2.2" || !b1.More {
		t.Fatalf("first batch: %q, %+v, %v", got, b1, err)
	}
	again, _ := f.Read()
	if addrs(again) != addrs(b1) {
		t.Fatalf("read again before the commit: %q, want %q", addrs(again), addrs(b1))
	}
	// A crash before the commit: the next process reads the batch again.
	f.Close()
	f = open(t, cfg)
	if b, _ := f.Read(); addrs(b) != addrs(b1) {
		t.Fatalf("after a restart: %q, want %q", addrs(b), addrs(b1))
	}
	if err := f.Commit(b1); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(b1); !errors.Is(err, ErrStale) {
		t.Fatalf("the same batch committed twice: %v, want ErrStale", err)
	}
	var got []string
	for {
		b, err := f.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Failures) > 0 {
			got = append(got, addrs(b))
		}
		if err := f.Commit(b); err != nil {
			t.Fatal(err)
		}
		if !b.More {
			break
		}
	}
	if strings.Join(got, " / ") != "sshd 192.0.2.3|sshd 192.0.2.4 / sshd 192.0.2.5" {
		t.Errorf("the other batches: %q", got)
	}
}

// TestFollowRotation: what fail2ban wrote to the old log after the last
// commit, and what it writes to the new one, are read in order.
func TestFollowRotation(t *testing.T) {
	cfg := testConfig(t)
	appendLog(t, cfg.Log, foundLine("sshd", "192.0.2.1", now))
	f := open(t, cfg)
	appendLog(t, cfg.Log, foundLine("sshd", "192.0.2.2", now))
	if err := os.Rename(cfg.Log, cfg.Log+".1"); err != nil {
		t.Fatal(err)
	}
	appendLog(t, cfg.Log+".1", foundLine("sshd", "192.0.2.3", now)) // before fail2ban reopens its log
	appendLog(t, cfg.Log, foundLine("sshd", "192.0.2.4", now))
	b, err := f.Read()
	if got := addrs(b); err != nil || got != "sshd 192.0.2.2|sshd 192.0.2.3|sshd 192.0.2.4" || b.Start != logtail.StartRotated {
		t.Fatalf("got %q, %+v, %v", got, b, err)
	}
	if err := f.Commit(b); err != nil {
		t.Fatal(err)
	}
	appendLog(t, cfg.Log, foundLine("sshd", "192.0.2.5", now))
	if b, err := f.Read(); addrs(b) != "sshd 192.0.2.5" || b.Start != logtail.StartContinued {
		t.Fatalf("after the rotation: %q, %+v, %v", addrs(b), b, err)
	}
}

// TestFollowPassesOver: lines over MaxLine and failures beyond MaxAge are
// passed over, and counted.
func TestFollowPassesOver(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAge = time.Hour
	appendLog(t, cfg.Log, "")
	f := open(t, cfg)
	appendLog(t, cfg.Log, strings.Repeat("x", 3*MaxLine)+"\n"+foundLine("sshd", "192.0.2.1", now.Add(-2*time.Hour))+
		foundLine("sshd", "192.0.2.2", now.Add(2*time.Hour))+foundLine("sshd", "192.0.2.3", now.Add(-time.Minute)))
	b, err := f.Read()
	if got := addrs(b); err != nil || got != "sshd 192.0.2.3" || b.Skipped != 1 || b.Old != 2 || b.Lines != 4 {
		t.Fatalf("got %q, %+v, %v; want the recent failure, one long line and two old failures passed over", got, b, err)
	}
}

func TestFollowRefuses(t *testing.T) {
	cfg := testConfig(t)
	appendLog(t, cfg.Log, "")
	for _, jails := range [][]string{nil, {"ss hd"}, {"sshd", "$(x)"}} {
		c := cfg
		c.Jails = jails
		if _, err := Open(context.Background(), c); err == nil {
			t.Errorf("jails %q: accepted", jails)
		}
	}
	f := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, cfg); !errors.Is(err, logtail.ErrBusy) {
		t.Errorf("a second Follower of the cursor: %v, want logtail.ErrBusy", err)
	}
	f.Close()
	if err := os.Chmod(filepath.Dir(cfg.Cursor), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), cfg); !errors.Is(err, logtail.ErrUnsafeState) {
		t.Errorf("a world-writable state directory: %v, want logtail.ErrUnsafeState", err)
	}
	c := cfg
	c.Log = filepath.Join(t.TempDir(), "none.log")
	os.Chmod(filepath.Dir(cfg.Cursor), 0o700)
	os.Remove(cfg.Cursor)
	if _, err := Open(context.Background(), c); !errors.Is(err, logtail.ErrNoLog) {
		t.Errorf("no log: %v, want logtail.ErrNoLog", err)
	}
}

// BenchmarkFollowerRead: one Read of a log of 100,000 lines of fail2ban's,
// one in ten a Found line of a followed jail (b.SetBytes: the log's size).
func BenchmarkFollowerRead(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxBatch = maxLines
	if err := os.WriteFile(cfg.Log, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := Open(context.Background(), cfg) // at the end of the empty log
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var log strings.Builder
	for i := range maxLines {
		if i%10 == 0 {
			log.WriteString(foundLine("sshd", fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), now))
		} else {
			log.WriteString(banLine("nginx", fmt.Sprintf("192.0.2.%d", i%256)))
		}
	}
	if err := os.WriteFile(cfg.Log, []byte(log.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(log.Len()))
	for b.Loop() {
		bt, err := f.Read()
		if err != nil || len(bt.Failures) != maxLines/10 {
			b.Fatalf("%d failures, %v", len(bt.Failures), err)
		}
	}
	b.ReportMetric(float64(maxLines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
