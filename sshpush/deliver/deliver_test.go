package deliver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/fakepeer"
)

type fixture struct {
	spool   *spool.Spool
	peers   []Peer
	servers []*fakepeer.Peer
}

// newFixture starts n in-process peers running the real receiver, and a
// spool to deliver to them from.
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	fleet := fakepeer.StartFleet(t, n)
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{spool: sp, servers: fleet.Peers}
	for _, p := range fleet.Peers {
		f.peers = append(f.peers, Peer{Name: p.Name, Target: sshpush.Target{
			HostName: p.Host, Port: p.Port, User: "banpush",
			IdentityFiles:   []string{fleet.KeyFile},
			KnownHostsFiles: []string{fleet.KnownHosts},
		}})
	}
	return f
}

func (f *fixture) push(t *testing.T, addrs ...string) {
	t.Helper()
	var recs []record.Record
	for _, a := range addrs {
		recs = append(recs, record.Record{Addr: netip.MustParseAddr(a)})
	}
	if err := f.spool.Append(context.Background(), time.Now(), recs...); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) config() Config {
	return Config{Spool: f.spool, Peers: f.peers, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

func addrsFrom(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("203.0.113.%d", from+i)
	}
	return out
}

// TestRunDelivers: every queued ban reaches every peer once, in batches,
// over one connection per peer, and the queue is empty afterwards.
func TestRunDelivers(t *testing.T) {
	f := newFixture(t, 3)
	bans := addrsFrom(1, 50)
	f.push(t, bans...)
	f.push(t, bans[0]) // the same ban again, in the same batch: sent once
	results := Run(context.Background(), f.config())
	for i, r := range results {
		if r.Class != sshpush.ClassOK || r.Delivered != 50 || r.Dials != 1 {
			t.Errorf("%s: %s, %d dials", r.Peer, r.Summary(), r.Dials)
		}
		got := f.servers[i].Logged()
		for _, a := range bans {
			if got[a] != 1 {
				t.Errorf("%s logged %s %d times, want 1", r.Peer, a, got[a])
			}
		}
	}
	if pending, _ := f.spool.HasPending([]string{"peer1", "peer2", "peer3"}); pending {
		t.Error("bans still pending after Run")
	}
}

// TestRunKeepsLaterBan: an address queued twice in a batch is sent once,
// with the ban that ends later.
func TestRunKeepsLaterBan(t *testing.T) {
	f := newFixture(t, 1)
	now := time.Now().Unix()
	a := netip.MustParseAddr("203.0.113.50")
	for _, r := range []record.Record{{Addr: a, Time: now, BanTime: 600}, {Addr: a, Time: now, BanTime: record.Permanent}, {Addr: a, Time: now, BanTime: 60}} {
		if err := f.spool.Append(context.Background(), time.Now(), r); err != nil {
			t.Fatal(err)
		}
	}
	if r := Run(context.Background(), f.config())[0]; r.Delivered != 1 {
		t.Fatalf("got %s, want 1 delivered", r.Summary())
	}
	b, _ := os.ReadFile(f.servers[0].Log)
	if !strings.Contains(string(b), "bantime=-1\n") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("log %q, want one line with the permanent ban", b)
	}
}

// TestRunBatches: a queue longer than a batch goes out in several batches
// on one connection.
func TestRunBatches(t *testing.T) {
	f := newFixture(t, 1)
	f.push(t, addrsFrom(1, 50)...)
	cfg := f.config()
	cfg.BatchRecords = 20
	r := Run(context.Background(), cfg)[0]
	if r.Class != sshpush.ClassOK || r.Delivered != 50 || r.Batches != 3 || r.Dials != 1 {
		t.Errorf("got %s in %d batches over %d connections, want 50 in 3 over 1", r.Summary(), r.Batches, r.Dials)
	}
}

// TestRunFallsBack: a receiver that does not know streams gets each batch
// as a request of its own.
func TestRunFallsBack(t *testing.T) {
	f := newFixture(t, 1)
	f.servers[0].NoStream.Store(true)
	f.push(t, addrsFrom(1, 30)...)
	cfg := f.config()
	cfg.BatchRecords = 10
	r := Run(context.Background(), cfg)[0]
	if r.Class != sshpush.ClassOK || r.Delivered != 30 || f.servers[0].Batches.Load() != 3 {
		t.Errorf("got %s, %d batches on the server; want 30 delivered in 3", r.Summary(), f.servers[0].Batches.Load())
	}
}

// TestRunRateLimitKeepsQueue: bans the receiver refuses for its rate limit
// stay queued, in order, and go out once the limit allows.
func TestRunRateLimitKeepsQueue(t *testing.T) {
	f := newFixture(t, 1)
	f.servers[0].Burst.Store(5)
	bans := addrsFrom(1, 8)
	f.push(t, bans...)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r := Run(ctx, f.config())[0]
	if r.Class != sshpush.ClassBusy || r.Delivered != 5 || r.Refused != 0 {
		t.Errorf("got %s, want busy with 5 delivered and none refused", r.Summary())
	}
	if n, _, _ := f.spool.Pending("peer1"); n != 3 {
		t.Errorf("%d queued, want the 3 limited bans", n)
	}
	// A fresh bucket (the state file is the receiver's): the rest goes out.
	// First, the stream the first run gave up on at its deadline must
	// have ended on the peer's side: with a fresh bucket it would take
	// the rest itself.
	cancel()
	if !f.servers[0].WaitIdle(10 * time.Second) {
		t.Fatal("the peer still serves the first run's request after 10 s")
	}
	f.servers[0].Burst.Store(100)
	os.Remove(f.servers[0].Log + ".state")
	r = Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Delivered != 3 {
		t.Errorf("got %s, want the 3 queued delivered", r.Summary())
	}
	got := f.servers[0].Logged()
	for _, a := range bans {
		if got[a] != 1 {
			t.Errorf("%s logged %d times, want 1", a, got[a])
		}
	}
}

// TestRunRetriesBusy: a receiver answering 75 (log busy) is retried until
// it accepts.
func TestRunRetriesBusy(t *testing.T) {
	f := newFixture(t, 1)
	f.servers[0].Busy.Store(3)
	f.push(t, "203.0.113.9")
	results := Run(context.Background(), f.config())
	if r := results[0]; r.Class != sshpush.ClassOK || r.Delivered != 1 {
		t.Errorf("got %s, want ok after retries", r.Summary())
	}
}

// TestRunRetryShowsFailure: each retryable failure is saved before the
// wait that follows it, so that 'banpush status' shows it during the
// retries, without the peer's name in the message (status names the peer),
// and Retry hears of each.
func TestRunRetryShowsFailure(t *testing.T) {
	f := newFixture(t, 1)
	f.servers[0].Busy.Store(2)
	f.push(t, "203.0.113.9")
	cfg := f.config()
	retries := 0
	cfg.Retry = func(peer string, err error, wait time.Duration) {
		retries++
		st, lerr := f.spool.LoadState(peer)
		if lerr != nil || st.LastFailureClass != string(sshpush.ClassBusy) || st.LastFailure.IsZero() {
			t.Errorf("retry %d: state %+v (%v), want the busy failure saved", retries, st, lerr)
		}
		if strings.Contains(st.LastFailureMessage, "peer "+peer) {
			t.Errorf("the saved message names the peer: %q", st.LastFailureMessage)
		}
		// The wait counts from the try's start: a try slower than the
		// backoff is followed by the next at once.
		if sshpush.ClassOf(err) != sshpush.ClassBusy || wait < 0 || wait > cfg.MaxBackoff {
			t.Errorf("Retry(%s, %v, %s): want a busy error and a wait within [0, %s]", peer, err, wait, cfg.MaxBackoff)
		}
	}
	results := Run(context.Background(), cfg)
	if r := results[0]; r.Class != sshpush.ClassOK || retries != 2 {
		t.Errorf("got %s after %d retries, want ok after 2", r.Summary(), retries)
	}
}

// TestRunRefusal: a record the peer's policy refuses is counted, and the
// result says why.
func TestRunRefusal(t *testing.T) {
	f := newFixture(t, 1)
	f.push(t, "203.0.113.9", "10.1.2.3")
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Delivered != 1 || r.Refused != 1 || r.Refusal != "line 2: refused: private address" {
		t.Errorf("got %s, refusal %q; want 1 delivered, 1 refused for a private address", r.Summary(), r.Refusal)
	}
}

// TestRunAuthNotRetried: a peer that refuses the key fails once, is not
// retried, and keeps its queue; the others are served.
func TestRunAuthNotRetried(t *testing.T) {
	f := newFixture(t, 2)
	f.peers[1].Target.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	f.push(t, "203.0.113.10")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := Run(ctx, f.config())
	if results[0].Class != sshpush.ClassOK {
		t.Errorf("peer1: %s", results[0].Summary())
	}
	if r := results[1]; r.Class != sshpush.ClassAuth || r.Dials != 1 {
		t.Errorf("peer2: %s after %d dials, want auth after 1", r.Summary(), r.Dials)
	}
	if n, _, _ := f.spool.Pending("peer2"); n != 1 {
		t.Errorf("peer2 has %d queued, want 1", n)
	}
	st, _ := f.spool.LoadState("peer2")
	if st.LastFailureClass != string(sshpush.ClassAuth) {
		t.Errorf("state %+v, want the auth failure recorded", st)
	}
}

// TestRunLingers: while lingering, a new ban goes out on the open
// connection as soon as the Notifier says the journal grew.
func TestRunLingers(t *testing.T) {
	f := newFixture(t, 2)
	f.push(t, "203.0.113.20")
	cfg := f.config()
	cfg.Linger = 3 * time.Second
	cfg.Wake = NewNotifier()
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), cfg) }()
	waitFor(t, func() bool {
		return f.servers[0].Logged()["203.0.113.20"] == 1 && f.servers[1].Logged()["203.0.113.20"] == 1
	})
	f.push(t, "203.0.113.21")
	cfg.Wake.Notify()
	waitFor(t, func() bool {
		return f.servers[0].Logged()["203.0.113.21"] == 1 && f.servers[1].Logged()["203.0.113.21"] == 1
	})
	results := <-done
	for i, r := range results {
		if r.Dials != 1 || r.Batches != 2 || f.servers[i].Conns.Load() != 1 || f.servers[i].Streams.Load() != 1 {
			t.Errorf("%s: %d dials, %d batches, %d connections, %d streams; want 1, 2, 1, 1",
				r.Peer, r.Dials, r.Batches, f.servers[i].Conns.Load(), f.servers[i].Streams.Load())
		}
	}
}

// TestRunStop: closing Stop ends the linger at once.
func TestRunStop(t *testing.T) {
	f := newFixture(t, 1)
	f.push(t, "203.0.113.30")
	cfg := f.config()
	cfg.Linger = time.Hour
	stop := make(chan struct{})
	cfg.Stop = stop
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), cfg) }()
	waitFor(t, func() bool { return f.servers[0].Logged()["203.0.113.30"] == 1 })
	close(stop)
	select {
	case r := <-done:
		if r[0].Class != sshpush.ClassOK {
			t.Errorf("got %s", r[0].Summary())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
}

// TestRunExpired: records past their bantime or MaxAge are dropped and
// counted, and the cursor moves past them without connecting.
func TestRunExpired(t *testing.T) {
	f := newFixture(t, 1)
	old := record.Record{Addr: netip.MustParseAddr("203.0.113.40"), Time: time.Now().Add(-time.Hour).Unix(), BanTime: 600}
	if err := f.spool.Append(context.Background(), time.Now(), old); err != nil {
		t.Fatal(err)
	}
	if err := f.spool.Append(context.Background(), time.Now().Add(-48*time.Hour), record.Record{Addr: netip.MustParseAddr("203.0.113.41")}); err != nil {
		t.Fatal(err)
	}
	r := Run(context.Background(), f.config())[0]
	if r.Dropped != 2 || r.Delivered != 0 || r.Dials != 0 {
		t.Errorf("got %s with %d dials, want 2 dropped and no connection", r.Summary(), r.Dials)
	}
	if n, _, _ := f.spool.Pending("peer1"); n != 0 {
		t.Errorf("%d still queued", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestExpiryBounds: the expiry arithmetic holds at the ends of what a
// record and a queue time can say.
func TestExpiryBounds(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddr("203.0.113.60")
	tests := []struct {
		name string
		e    spool.Entry
		want bool
	}{
		{"latest time, longest ban", spool.Entry{Item: spool.Item{Record: record.Record{Addr: a, Time: record.MaxTime, BanTime: record.MaxBanTime}}, Queued: now}, false},
		{"permanent", spool.Entry{Item: spool.Item{Record: record.Record{Addr: a, Time: 1, BanTime: record.Permanent}}, Queued: now}, false},
		{"ended long ago", spool.Entry{Item: spool.Item{Record: record.Record{Addr: a, Time: 1, BanTime: 1}}, Queued: now}, true},
		{"queued at the epoch", spool.Entry{Item: spool.Item{Record: record.Record{Addr: a}}, Queued: time.Unix(0, 1)}, true},
		{"queued in the future", spool.Entry{Item: spool.Item{Record: record.Record{Addr: a}}, Queued: time.Unix(0, math.MaxInt64)}, false},
	}
	for _, tt := range tests {
		if got := expired(tt.e, now, DefaultMaxAge); got != tt.want {
			t.Errorf("%s: expired = %v, want %v", tt.name, got, tt.want)
		}
	}
	if banEnd(record.Record{BanTime: record.Permanent}) != math.MaxInt64 || banEnd(record.Record{Time: record.MaxTime, BanTime: record.MaxBanTime}) <= record.MaxTime {
		t.Error("banEnd overflows at its bounds")
	}
}

// lateCtx is a context whose deadline has passed but which has not noticed
// yet, as a context looks for a moment after its deadline.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestFailKeepsCause: a failure caused by the run's deadline (a dial cut
// short) does not replace the failure that called for the retry, even when
// it arrives a moment before the context notices its deadline.
func TestFailKeepsCause(t *testing.T) {
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Spool: sp}
	cfg.defaults()
	w := &worker{cfg: &cfg, shared: &run{}, peer: Peer{Name: "peer1"}, res: &Result{}}
	busy := &sshpush.Error{Peer: "peer1", Class: sshpush.ClassBusy, Err: errors.New("rate limit")}
	w.fail(context.Background(), busy)
	w.fail(lateCtx{context.Background()}, &sshpush.Error{Peer: "peer1", Class: sshpush.ClassTimeout, Err: errors.New("dial tcp: i/o timeout")})
	if w.res.Class != sshpush.ClassBusy {
		t.Errorf("class %s, want busy kept", w.res.Class)
	}
}

// fakeClock is a Config.Now that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRunCursorWrites: a lingering worker writes its peer's cursor
// saveAfter after it first moves (the sender being quiet), whatever moved
// it meanwhile, and when it ends: on disk the cursor may lag what the peer
// acknowledged, never lead it.
func TestRunCursorWrites(t *testing.T) {
	f := newFixture(t, 1)
	clock := &fakeClock{now: time.Now()}
	cfg := f.config()
	cfg.Now = clock.Now
	cfg.Linger = time.Hour
	cfg.Wake = NewNotifier()
	stop := make(chan struct{})
	cfg.Stop = stop
	pending := func() int {
		t.Helper()
		n, _, err := f.spool.Pending("peer1")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ban := func(addr string) {
		t.Helper()
		f.push(t, addr)
		cfg.Wake.Notify()
		waitFor(t, func() bool { return f.servers[0].Logged()[addr] == 1 })
	}

	// written moves the clock on until the cursor is on disk: the worker
	// notes when the cursor moved only once the peer's answer is in, which
	// may come after the log line the test waits for.
	written := func() {
		t.Helper()
		waitFor(t, func() bool { clock.add(saveAfter / 10); return pending() == 0 })
	}

	f.push(t, "203.0.113.50")
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), cfg) }()
	waitFor(t, func() bool { return f.servers[0].Logged()["203.0.113.50"] == 1 })
	if n := pending(); n != 1 {
		t.Errorf("right after the first ban: %d pending on disk, want 1 (the cursor kept in memory)", n)
	}
	written() // at the next poll once saveAfter has passed

	ban("203.0.113.51")
	ban("203.0.113.52")
	if n := pending(); n != 2 {
		t.Errorf("within saveAfter of the cursor's first move: %d pending on disk, want 2", n)
	}
	written()

	ban("203.0.113.53")
	if n := pending(); n != 1 {
		t.Errorf("after another ban: %d pending on disk, want 1", n)
	}
	close(stop)
	r := <-done
	if n := pending(); n != 0 || r[0].Delivered != 4 {
		t.Errorf("after Run: %d pending on disk, %d delivered; want 0 and 4", n, r[0].Delivered)
	}
	if got := f.servers[0].Logged(); len(got) != 4 {
		t.Errorf("peer logged %v, want each of the 4 bans once", got)
	}
}

// TestRunBatchGap: a lingering peer sends the first ban at once, and the
// bans that come within BatchGap of a batch together in the next one.
func TestRunBatchGap(t *testing.T) {
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Linger = time.Hour
	cfg.BatchGap = time.Second
	cfg.Wake = NewNotifier()
	stop := make(chan struct{})
	cfg.Stop = stop
	f.push(t, "203.0.113.60")
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), cfg) }()
	waitFor(t, func() bool { return f.servers[0].Logged()["203.0.113.60"] == 1 })
	for _, a := range addrsFrom(61, 3) {
		f.push(t, a)
		cfg.Wake.Notify()
	}
	waitFor(t, func() bool { return len(f.servers[0].Logged()) == 4 })
	close(stop)
	r := (<-done)[0]
	if r.Delivered != 4 || r.Batches != 2 {
		t.Errorf("%d delivered in %d batches, want 4 in 2 (the three pushed within BatchGap of the first batch together)", r.Delivered, r.Batches)
	}
}

// TestDue: a write is due saveAfter after the change once no batch has been
// answered for quietFor, and saveAtMost after it whatever the traffic.
func TestDue(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name        string
		changed     time.Duration // before now
		sent        time.Duration // before now (real time)
		due         bool
		againAtMost time.Duration
	}{
		{"too soon", 400 * time.Millisecond, time.Hour, false, 600 * time.Millisecond},
		{"a second after, quiet", saveAfter + time.Millisecond, time.Second, true, 0},
		{"a second after, a batch just answered", 2 * saveAfter, 10 * time.Millisecond, false, quietFor},
		{"saveAtMost after, busy", saveAtMost, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &worker{cfg: &Config{Now: func() time.Time { return now }}, shared: &run{anySent: new(atomic.Int64)}}
			w.shared.anySent.Store(time.Now().Add(-tt.sent).UnixNano())
			due, again := w.due(now.Add(-tt.changed))
			if due != tt.due || again > tt.againAtMost || !due && again <= 0 {
				t.Errorf("due = %v, look again in %s; want %v, in (0, %s]", due, again, tt.due, tt.againAtMost)
			}
		})
	}
}
