package receive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

func testConfig(t *testing.T, now *time.Time) Config {
	t.Helper()
	return Config{
		Peer:         "web1",
		LogPath:      filepath.Join(t.TempDir(), "received.log"),
		MaxBurst:     DefaultMaxBurst,
		MaxPerMinute: DefaultMaxPerMinute,
		LockTimeout:  DefaultLockTimeout,
		UnbanWindow:  DefaultUnbanWindow,
		Now:          func() time.Time { return *now },
	}
}

// addrs returns n distinct documentation-range addresses, one a line.
func addrs(start, n int) string {
	var b strings.Builder
	for i := start; i < start+n; i++ {
		fmt.Fprintf(&b, "2001:db8::%x:%x\n", i>>16, i&0xffff)
	}
	return b.String()
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

// TestLegitimateBurst: 1000 bans at once from one peer all pass.
func TestLegitimateBurst(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	res, err := Accept(context.Background(), cfg, strings.NewReader(addrs(0, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1000 || len(res.Refused) != 0 {
		t.Errorf("accepted %d refused %d, want 1000 and 0", res.Accepted, len(res.Refused))
	}
	if n := countLines(t, cfg.LogPath); n != 1000 {
		t.Errorf("log has %d lines, want 1000", n)
	}
}

// TestFlood: a compromised peer offering 100,000 addresses gets the burst,
// then the refill rate, across separate invocations; another peer sharing the
// log keeps its own bucket.
func TestFlood(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	accepted := 0
	for i := 0; i < 10; i++ {
		res, err := Accept(context.Background(), cfg, strings.NewReader(addrs(i*10000, 10000)))
		if err != nil {
			t.Fatal(err)
		}
		wantFrom := 1
		if i == 0 {
			wantFrom = DefaultMaxBurst + 1
		}
		if res.Limited != 10000-res.Accepted || res.LimitedFrom != wantFrom {
			t.Errorf("batch %d: limited=%d from line %d, want %d from %d", i, res.Limited, res.LimitedFrom, 10000-res.Accepted, wantFrom)
		}
		accepted += res.Accepted
		for _, r := range res.Refused {
			if r.Reason != record.ErrRateLimit {
				t.Fatalf("line %d refused for %q, want rate limit", r.Line, r.Reason)
			}
		}
	}
	if accepted != DefaultMaxBurst {
		t.Errorf("accepted %d at once, want the burst %d", accepted, DefaultMaxBurst)
	}

	// One minute later: the refill rate, not more.
	now = now.Add(time.Minute)
	res, err := Accept(context.Background(), cfg, strings.NewReader(addrs(200000, 10000)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != DefaultMaxPerMinute {
		t.Errorf("accepted %d a minute later, want %d", res.Accepted, DefaultMaxPerMinute)
	}

	// Another peer writing to the same log is not affected.
	other := cfg
	other.Peer = "web2"
	res, err = Accept(context.Background(), other, strings.NewReader(addrs(300000, 10)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 10 {
		t.Errorf("other peer accepted %d, want 10", res.Accepted)
	}
	if n, want := countLines(t, cfg.LogPath), DefaultMaxBurst+DefaultMaxPerMinute+10; n != want {
		t.Errorf("log has %d lines, want %d", n, want)
	}

	// An hour later the bucket is full again, never fuller.
	now = now.Add(time.Hour)
	res, err = Accept(context.Background(), cfg, strings.NewReader(addrs(400000, 10000)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != DefaultMaxBurst {
		t.Errorf("accepted %d after an hour, want %d", res.Accepted, DefaultMaxBurst)
	}
}

func TestPolicyLocalAndRemote(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	cfg.Policy.Local = []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")}
	cfg.Policy.Remote = netip.MustParseAddr("203.0.113.2")
	res, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.1\n2001:db8::1\n::ffff:203.0.113.2\n203.0.113.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Refused{{1, record.ErrLocal}, {2, record.ErrLocal}, {3, record.ErrRemote}}
	if res.Accepted != 1 || fmt.Sprint(res.Refused) != fmt.Sprint(want) {
		t.Errorf("got accepted=%d refused=%v, want 1 and %v", res.Accepted, res.Refused, want)
	}
}

// TestLockTimeout: a log whose lock is held past the deadline is a
// TempError, and nothing is written.
func TestLockTimeout(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	cfg.LockTimeout = 50 * time.Millisecond
	st, err := openState(context.Background(), cfg.LogPath+".state")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n"))
	var temp *TempError
	if !errors.As(err, &temp) {
		t.Errorf("err = %v, want a TempError", err)
	}
	if n := countLines(t, cfg.LogPath); n != 0 {
		t.Errorf("log has %d lines, want 0", n)
	}
	st.close()
	if _, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n")); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}

// TestCannotWrite: a log that cannot be written (a directory, a link, a
// missing directory, a state file that is not a file) is a WriteError, not
// a TempError: waiting does not fix it. Nothing is written, and Writable,
// which a ping answers with, finds each case without writing anything.
func TestCannotWrite(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name  string
		brake func(t *testing.T, log string)
	}{
		{"log is a directory", func(t *testing.T, log string) { mkdir(t, log) }},
		{"log is a link", func(t *testing.T, log string) { symlink(t, "/etc/passwd", log) }},
		{"log's directory is missing", func(t *testing.T, log string) { os.Remove(filepath.Dir(log)) }},
		{"state is a directory", func(t *testing.T, log string) { mkdir(t, log+".state") }},
		{"state is a link", func(t *testing.T, log string) { symlink(t, "/etc/passwd", log+".state") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, &now)
			if err := Writable(cfg.LogPath); err != nil {
				t.Fatalf("Writable before: %v", err)
			}
			tt.brake(t, cfg.LogPath)
			var unwritable *WriteError
			if err := Writable(cfg.LogPath); !errors.As(err, &unwritable) {
				t.Errorf("Writable: got %v, want a WriteError", err)
			}
			_, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n"))
			if !errors.As(err, &unwritable) {
				t.Errorf("Accept: got %v, want a WriteError", err)
			}
			var temp *TempError
			if errors.As(err, &temp) {
				t.Errorf("Accept: got a TempError too: %v", err)
			}
			if fi, err := os.Lstat(cfg.LogPath); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
				t.Errorf("the log has %d bytes, want none", fi.Size())
			}
		})
	}
	// A log that exists and one that does not, in a directory the
	// receiver may write: a batch could write both.
	cfg := testConfig(t, &now)
	if _, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n")); err != nil {
		t.Fatal(err)
	}
	if err := Writable(cfg.LogPath); err != nil {
		t.Errorf("Writable with the log and its state there: %v", err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReceivers: many receivers writing one log at once never
// interleave or tear lines.
func TestConcurrentReceivers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	const workers, each = 16, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			c := cfg
			c.Peer = fmt.Sprintf("peer%d", w)
			res, err := Accept(context.Background(), c, strings.NewReader(addrs(w*each, each)))
			if err == nil && res.Accepted != each {
				err = fmt.Errorf("worker %d accepted %d", w, res.Accepted)
			}
			errs <- err
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != workers*each {
		t.Fatalf("%d lines, want %d", len(lines), workers*each)
	}
	for i, l := range lines {
		p, err := logline.Parse([]byte(l))
		if err != nil || p.Kind != logline.Ban || !strings.HasPrefix(p.Peer, "peer") {
			t.Fatalf("line %d torn: %q", i+1, l)
		}
	}
}

func TestStateFileDamaged(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	garbage := "web1 notanumber 5\n\x00\x01garbage\nweb1 1000\n../x 1 1\n"
	if err := os.WriteFile(cfg.LogPath+".state", []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Accept(context.Background(), cfg, strings.NewReader(addrs(0, 5)))
	if err != nil || res.Accepted != 5 {
		t.Fatalf("accepted %d, err %v; want 5, nil", res.Accepted, err)
	}
	b, _ := os.ReadFile(cfg.LogPath + ".state")
	if want := fmt.Sprintf("web1 %d %d 5 0 0 0 0\n", (DefaultMaxBurst-5)*milli, now.UnixNano()); string(b) != want {
		t.Errorf("state %q, want %q", b, want)
	}
}

// TestCounters: each pushing peer's accepted, refused and rate-limited
// records add up in the state file across batches, those of a batch that
// wrote nothing included, and a state line of an older version (without
// counters) keeps its bucket and counts from zero.
func TestCounters(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	if err := os.WriteFile(cfg.LogPath+".state", []byte(fmt.Sprintf("web1 %d %d\n", 3*milli, now.UnixNano())), 0o600); err != nil {
		t.Fatal(err)
	}
	batches := []string{
		"203.0.113.1\n10.0.0.1\n",                 // 1 accepted, 1 refused
		"127.0.0.1\n",                             // refused, nothing written
		"203.0.113.2\n203.0.113.3\n203.0.113.4\n", // 2 accepted, 1 rate-limited
	}
	for _, b := range batches {
		if _, err := Accept(context.Background(), cfg, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	other := cfg
	other.Peer = "web2"
	if _, err := Accept(context.Background(), other, strings.NewReader("203.0.113.9\n")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCounters(cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counters{"web1": {Accepted: 3, Refused: 2, Limited: 1}, "web2": {Accepted: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := ReadCounters(filepath.Join(t.TempDir(), "none.log")); err != nil || len(got) != 0 {
		t.Errorf("no state file: got %v, %v; want none", got, err)
	}
}

// TestLogLockedByReader: a reader of the log (a member of its group adm may
// open it read-only) who holds a lock on it does not stop the receiver: it
// used to wait for that lock and give up with nothing written.
func TestLogLockedByReader(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	cfg.LockTimeout = 200 * time.Millisecond
	if err := os.WriteFile(cfg.LogPath, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := unix.Flock(int(r.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	res, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n"))
	if err != nil || res.Accepted != 1 {
		t.Fatalf("with a reader holding the log's lock: %+v, %v; want the record written", res, err)
	}
	if n := countLines(t, cfg.LogPath); n != 1 {
		t.Errorf("log has %d lines, want 1", n)
	}
}

// TestStatePrivate: the state file, whose lock serializes receivers, is
// made private to the receiving account if it was not.
func TestStatePrivate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	state := cfg.LogPath + ".state"
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Accept(context.Background(), cfg, strings.NewReader("203.0.113.7\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
}
