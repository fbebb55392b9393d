package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/fakepeer"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// fixture is a spool and n in-process peers running the real receiver.
type fixture struct {
	spool *spool.Spool
	fleet *fakepeer.Fleet
	peers []deliver.Peer
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	f := &fixture{spool: newSpool(t), fleet: fakepeer.StartFleet(t, n)}
	for _, p := range f.fleet.Peers {
		f.peers = append(f.peers, deliver.Peer{Name: p.Name, Target: sshpush.Target{
			HostName: p.Host, Port: p.Port, User: "banpush",
			IdentityFiles:   []string{f.fleet.KeyFile},
			KnownHostsFiles: []string{f.fleet.KnownHosts},
		}})
	}
	return f
}

func (f *fixture) config() Config {
	return Config{
		Spool: f.spool,
		Roster: func() (Roster, error) {
			var live []string
			for _, p := range f.peers {
				live = append(live, p.Name)
			}
			return Roster{Peers: f.peers, Live: live}, nil
		},
	}
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

// logged reports whether every peer has every address in its log.
func (f *fixture) logged(addrs ...string) bool {
	for _, p := range f.fleet.Peers {
		got := p.Logged()
		for _, a := range addrs {
			if got[a] == 0 {
				return false
			}
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestExitRace: a record appended after a background sender's last look at
// the queues, while it still holds the lock (so that the push that
// appended it starts no sender), is delivered before the sender exits. It
// fails if the look after releasing the lock is left out.
func TestExitRace(t *testing.T) {
	f := newFixture(t, 2)
	f.push(t, "203.0.113.1")
	cfg := f.config()
	rounds := 0
	cfg.afterRound = func() {
		rounds++
		if rounds > 1 {
			return
		}
		// What a push does at this moment: append, then test the lock.
		f.push(t, "203.0.113.2")
		if _, ok, err := TryLock(f.spool); ok || err != nil {
			t.Errorf("TryLock during the round: got %v, %v; want the lock held", ok, err)
		}
	}
	if err := Background(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !f.logged("203.0.113.1", "203.0.113.2") {
		t.Errorf("after the sender exited, the record appended during its last round is not delivered (rounds: %d)", rounds)
	}
	if pending, _ := f.spool.HasPending([]string{"peer1", "peer2"}); pending {
		t.Error("records still queued after the sender exited")
	}
}

// TestBackgroundRetriesFailingPeer: a background sender keeps trying a
// peer that refuses it (here its key is missing) while the others deliver,
// records the failure for 'banpush status', and delivers the peer's queue
// once the fault is fixed, with nobody's help.
func TestBackgroundRetriesFailingPeer(t *testing.T) {
	f := newFixture(t, 2)
	key := filepath.Join(t.TempDir(), "key")
	f.peers[1].Target.IdentityFiles = []string{key} // missing: authentication fails
	f.push(t, "203.0.113.3")
	cfg := f.config()
	cfg.Linger = 100 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- Background(context.Background(), cfg) }()
	waitFor(t, "delivery to peer1", func() bool { return f.fleet.Peers[0].Logged()["203.0.113.3"] == 1 })
	waitFor(t, "peer2's failure in its state", func() bool {
		st, _ := f.spool.LoadState("peer2")
		return st.LastFailureClass == string(sshpush.ClassAuth)
	})
	if n, _, _ := f.spool.Pending("peer2"); n != 1 {
		t.Errorf("peer2 has %d queued, want its 1 record kept", n)
	}
	b, err := os.ReadFile(f.fleet.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery to peer2 once its key is there", func() bool { return f.fleet.Peers[1].Logged()["203.0.113.3"] == 1 })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sender did not let go once every queue was empty")
	}
}

// TestBackgroundDownPeerHoldsNoOneBack: while one peer is down and
// retried, every other peer gets each new record as it comes, inside the
// linger and after it.
func TestBackgroundDownPeerHoldsNoOneBack(t *testing.T) {
	f := newFixture(t, 3)
	down, err := sshdtest.ReservePort() // held, and nothing listens: refused
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	f.peers[2].Target.Port = down.Number
	cfg := f.config()
	cfg.Linger = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Background(ctx, cfg) }()
	defer func() {
		cancel()
		<-done
	}()
	live := func(addr string) func() bool {
		return func() bool {
			return f.fleet.Peers[0].Logged()[addr] == 1 && f.fleet.Peers[1].Logged()[addr] == 1
		}
	}
	for i, wait := range []time.Duration{0, 50 * time.Millisecond, time.Second, 3 * time.Second} {
		time.Sleep(wait) // within the linger, and well after it
		addr := fmt.Sprintf("203.0.113.%d", 60+i)
		f.push(t, addr)
		waitFor(t, "delivery of "+addr+" to the live peers", live(addr))
	}
	if n, _, _ := f.spool.Pending("peer3"); n != 4 {
		t.Errorf("the peer that is down has %d queued, want 4", n)
	}
}

// TestBackgroundReadsInventoryAgain: a sender that runs for long (here,
// lingering) delivers to a peer added to the inventory meanwhile, and
// stops delivering to one removed from it.
func TestBackgroundReadsInventoryAgain(t *testing.T) {
	defer func(d time.Duration) { rosterEvery = d }(rosterEvery)
	rosterEvery = 50 * time.Millisecond
	f := newFixture(t, 2)
	var both atomic.Bool
	cfg := f.config()
	cfg.Linger = time.Hour
	cfg.Roster = func() (Roster, error) {
		if both.Load() {
			return Roster{Peers: f.peers, Live: []string{"peer1", "peer2"}}, nil
		}
		return Roster{Peers: f.peers[:1], Live: []string{"peer1", "peer2"}}, nil
	}
	var logged strings.Builder
	var mu sync.Mutex
	cfg.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&logged, format+"\n", args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Background(ctx, cfg) }()
	defer func() {
		cancel()
		<-done
	}()
	f.push(t, "203.0.113.80")
	waitFor(t, "delivery to peer1", func() bool { return f.fleet.Peers[0].Logged()["203.0.113.80"] == 1 })
	if f.fleet.Peers[1].Logged()["203.0.113.80"] != 0 {
		t.Fatal("peer2 got a ban while it was not in the inventory")
	}
	both.Store(true)
	waitFor(t, "delivery to peer2 once it is in the inventory", func() bool { return f.fleet.Peers[1].Logged()["203.0.113.80"] == 1 })
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "the inventory changed") {
		t.Errorf("the sender log does not say the inventory changed:\n%s", logged.String())
	}
}

// TestForegroundPreempts: a foreground run takes the lock from a background
// sender lingering for an hour, which finishes and exits without sending
// anything twice.
func TestForegroundPreempts(t *testing.T) {
	f := newFixture(t, 1)
	f.push(t, "203.0.113.4")
	cfg := f.config()
	cfg.Linger = time.Hour
	done := make(chan error, 1)
	go func() { done <- Background(context.Background(), cfg) }()
	waitFor(t, "the background delivery", func() bool { return f.logged("203.0.113.4") })
	waitFor(t, "the background sender listening", func() bool {
		ok, _ := Running(f.spool)
		return ok
	})

	f.push(t, "203.0.113.5")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, err := Foreground(ctx, f.config())
	if err != nil {
		t.Fatalf("Foreground: %v (the lingering sender did not let go)", err)
	}
	if len(results) != 1 || results[0].Class != sshpush.ClassOK {
		t.Errorf("Foreground: got %+v", results)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Background: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the background sender did not exit after letting go")
	}
	if got := f.fleet.Peers[0].Logged(); got["203.0.113.4"] != 1 || got["203.0.113.5"] != 1 {
		t.Errorf("logged %v, want each address once", got)
	}
}

// TestForegroundBusy: with the lock held by a process that does not listen,
// Foreground gives up when its context ends.
func TestForegroundBusy(t *testing.T) {
	f := newFixture(t, 1)
	l, _, err := TryLock(f.spool)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Foreground(ctx, f.config()); !errors.Is(err, ErrBusy) {
		t.Errorf("got %v, want ErrBusy", err)
	}
}

// TestForegroundKicks: records queued during a foreground run, for a peer
// it emptied or for one it did not deliver to, start a background sender.
func TestForegroundKicks(t *testing.T) {
	tests := []struct {
		name    string
		only    int // deliver to peers[:only]; the roster's Live names all
		pushAt  bool
		kickNow bool
	}{
		{"nothing new", 2, false, false},
		{"new record", 2, true, true},
		{"peer not flushed", 1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 2)
			f.push(t, "203.0.113.6")
			cfg := f.config()
			cfg.Roster = func() (Roster, error) {
				return Roster{Peers: f.peers[:tt.only], Live: []string{"peer1", "peer2"}}, nil
			}
			if tt.pushAt {
				cfg.afterRound = func() { f.push(t, "203.0.113.7") }
			}
			marker := filepath.Join(t.TempDir(), "kicked")
			cfg.Kick = helperCommand(t, "touch", marker)
			if _, err := Foreground(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			if tt.kickNow {
				waitFor(t, "the kicked sender", func() bool { _, err := os.Stat(marker); return err == nil })
			} else if _, err := os.Stat(marker); err == nil {
				t.Error("a sender was started with nothing left to deliver")
			}
		})
	}
}

// TestBackgroundWakes: a lingering sender carries each new record on the
// connection and stream it already has, woken by the journal's watcher.
func TestBackgroundWakes(t *testing.T) {
	f := newFixture(t, 2)
	cfg := f.config()
	cfg.Linger = time.Hour
	done := make(chan error, 1)
	go func() { done <- Background(context.Background(), cfg) }()
	for i, a := range []string{"203.0.113.8", "203.0.113.9", "203.0.113.10"} {
		f.push(t, a)
		waitFor(t, "delivery "+a, func() bool { return f.logged(a) })
		if i == 0 {
			if ok, _ := Running(f.spool); !ok {
				t.Fatal("the sender does not linger")
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Foreground(ctx, f.config()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range f.fleet.Peers {
		if p.Conns.Load() != 1 || p.Streams.Load() != 1 {
			t.Errorf("%s: %d connections and %d streams, want one of each: the lingering sender was not woken", p.Name, p.Conns.Load(), p.Streams.Load())
		}
	}
}

// TestLog: one line per message, control characters flattened.
func TestLog(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC) }
	l := OpenLog(dir, now)
	l.Printf("peer %s: %v", "web1", errors.New("two\nlines"))
	l.Close()
	b, err := os.ReadFile(LogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-11-30T04:00:00Z banpush[" // then the pid
	if got := string(b); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "]: peer web1: two lines\n") || strings.Count(got, "\n") != 1 {
		t.Errorf("log %q", got)
	}
}
