package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/spool"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// TestRunSlowPeerLendsItsSlot: with one slot, a peer whose address drops
// every packet (its dial waits 30 s) does not keep the slot from a live
// peer: the slot is lent for SlotLease only.
func TestRunSlowPeerLendsItsSlot(t *testing.T) {
	f := newFixture(t, 2)
	port, err := sshdtest.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	hole, err := port.Blackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	f.peers[0].Target.Port = port.Number
	f.peers[0].Target.ConnectTimeout = 30 * time.Second
	// First a ban for the blackholed peer only: it takes the one slot,
	// and keeps dialling.
	f.queue(t, time.Now(), item(spool.Ban, f.peers[0].Name, "203.0.113.69"))
	cfg := f.config()
	cfg.Concurrency = 1
	cfg.SlotLease = 100 * time.Millisecond
	cfg.Linger = time.Hour
	cfg.Wake = NewNotifier()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Result, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(300 * time.Millisecond)
	f.push(t, "203.0.113.70")
	cfg.Wake.Notify()
	waitFor(t, func() bool { return f.servers[1].Logged()["203.0.113.70"] == 1 })
}

// TestRunForegroundDeliversWhileRetrying: in a foreground run (no linger)
// that retries a peer that is down, a live peer whose queue is empty
// delivers what comes into the journal meanwhile, without waiting for the
// run to end.
func TestRunForegroundDeliversWhileRetrying(t *testing.T) {
	f := newFixture(t, 2)
	down, err := sshdtest.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	f.peers[0].Target.Port = down.Number // refused: retried until ctx ends
	f.push(t, "203.0.113.71")
	cfg := f.config()
	cfg.Wake = NewNotifier()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan []Result, 1)
	go func() { done <- Run(ctx, cfg) }()
	waitFor(t, func() bool { return f.servers[1].Logged()["203.0.113.71"] == 1 })
	f.push(t, "203.0.113.72")
	cfg.Wake.Notify()
	waitFor(t, func() bool { return f.servers[1].Logged()["203.0.113.72"] == 1 })
	cancel()
	r := <-done
	if r[0].Class != "unreachable" || r[1].Class != "ok" || r[1].Delivered != 2 {
		t.Errorf("got %s; %s; want the first unreachable, the second ok with 2 delivered", r[0].Summary(), r[1].Summary())
	}
}
