package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestChaosSoak (long tier only: -banpush.long): 20 peers for 10 minutes.
// Every 10 to 30 s something goes wrong: a random peer's sshd stops (or a
// stopped one starts again), a random receiver's log directory and log
// become unwritable for 5 to 20 s, or the sender is killed with SIGKILL.
// About 1,000 bans are pushed at random moments meanwhile, one push each.
// It prints, per peer, the bans expected, delivered, lost (none may be),
// the duplicate lines, the latency (p50, p99) of the bans pushed while the
// peer was up for the 2 s after, and how long the peer took to catch up
// after each return.
func TestChaosSoak(t *testing.T) {
	testenv.Slow(t)
	if !*longFaults {
		t.Skip("runs with -banpush.long (10 minutes): go test ./cmd/banpush -run ChaosSoak -banpush.long -v")
	}
	const peers, pushes = 20, 1000
	const soak = 10 * time.Minute
	c := newCluster(t, peers)
	c.unlimited() // a killed sender resends its last second: keep clear of the rate limit
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ch := &chaos{c: c, r: rand.New(rand.NewPCG(seed, 1)), down: map[*peer]bool{}, start: time.Now()}
	gaps := rand.New(rand.NewPCG(seed, 2))
	w := watchLogs(t, c.peers)
	defer w.stop()

	start := time.Now()
	done := make(chan struct{})
	var events sync.WaitGroup
	events.Add(1)
	go func() {
		defer events.Done()
		ch.run(done)
	}()
	bans := docAddrs(0x7c00000, pushes)
	pushed := make([]time.Time, len(bans))
	for i, a := range bans {
		// Exponential gaps, about soak/pushes apart on average.
		time.Sleep(time.Duration(gaps.ExpFloat64() * float64(soak) / pushes))
		c.run(nil, "push", "--jail", "sshd", a)
		pushed[i] = time.Now()
	}
	close(done)
	events.Wait()
	ch.restoreAll()
	t.Logf("%d pushes in %s; %d events", len(bans), time.Since(start).Round(time.Second), len(ch.log))

	// Every peer gets every ban: the last sender may have been killed
	// after the last push, which flush stands in for, as its timer would.
	c.run(nil, "flush", "--timeout", "2m")
	c.waitLogged(c.peers, bans, 2*time.Minute)

	var table strings.Builder
	fmt.Fprintf(&table, "%-7s %8s %9s %4s %4s %8s %8s %5s  %s\n", "PEER", "EXPECTED", "DELIVERED", "LOST", "DUPS", "P50", "P99", "N", "CATCH-UP AFTER EACH RETURN")
	for _, p := range c.peers {
		got := p.logged(t)
		dups, _ := duplicates(t, p)
		var lat []time.Duration
		for i, a := range bans {
			if !ch.upThrough(p, pushed[i], pushed[i].Add(2*time.Second)) {
				continue
			}
			if at, ok := w.at(p, a); ok {
				lat = append(lat, max(at.Sub(pushed[i]), 0))
			}
		}
		var catch []string
		for _, back := range ch.returns(p) {
			var last time.Time
			for i, a := range bans {
				if at, ok := w.at(p, a); ok && pushed[i].Before(back) && at.After(back) && at.After(last) {
					last = at
				}
			}
			if !last.IsZero() {
				catch = append(catch, last.Sub(back).Round(100*time.Millisecond).String())
			}
		}
		p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
		fmt.Fprintf(&table, "%-7s %8d %9d %4d %4d %8s %8s %5d  %s\n", p.name, len(bans), len(got), len(bans)-len(got), dups,
			p50.Round(time.Millisecond), p99.Round(time.Millisecond), len(lat), strings.Join(catch, " "))
		if len(got) != len(bans) {
			t.Errorf("%s lost %d bans", p.name, len(bans)-len(got))
		}
		if p99 > 2*time.Second {
			t.Errorf("%s: p99 %s for bans pushed while it was up, want at most 2 s", p.name, p99.Round(time.Millisecond))
		}
	}
	t.Logf("per peer:\n%s\nevents:\n%s", table.String(), strings.Join(ch.log, "\n"))
}

// chaos is what goes wrong during TestChaosSoak, and when.
type chaos struct {
	c  *cluster
	mu sync.Mutex
	r  *rand.Rand
	// down holds the peers whose sshd is stopped or whose log is
	// unwritable; spans records, per peer, when it was not up.
	down  map[*peer]bool
	spans []span
	log   []string
	start time.Time
}

// span is a time a peer was not up: [from, to), to zero while it lasts.
type span struct {
	p        *peer
	from, to time.Time
}

// run makes something go wrong every 10 to 30 s until done.
func (ch *chaos) run(done <-chan struct{}) {
	for {
		ch.mu.Lock()
		wait := 10*time.Second + time.Duration(ch.r.Int64N(int64(20*time.Second)))
		kind := ch.r.IntN(5)
		p := ch.c.peers[ch.r.IntN(len(ch.c.peers))]
		hold := 5*time.Second + time.Duration(ch.r.Int64N(int64(15*time.Second)))
		ch.mu.Unlock()
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
		switch {
		case kind < 2:
			ch.toggle(p)
		case kind < 4:
			ch.unwritable(p, hold)
		default:
			if killSender(ch.c) {
				ch.note("sender killed")
			}
		}
	}
}

// toggle stops p's sshd if it runs, and starts it if it is stopped.
func (ch *chaos) toggle(p *peer) {
	if ch.isDown(p) {
		if p.sshd.Pid() == 0 {
			p.sshd.Start()
			ch.up(p, "sshd started")
		}
		return
	}
	ch.setDown(p, "sshd stopped")
	p.sshd.Stop()
}

// unwritable makes p's log directory and log unwritable for hold.
func (ch *chaos) unwritable(p *peer, hold time.Duration) {
	if ch.isDown(p) {
		return
	}
	dir := filepath.Dir(p.log)
	dirInfo, err1 := os.Stat(dir)
	logInfo, err2 := os.Stat(p.log)
	if err1 != nil || err2 != nil {
		return // no log yet
	}
	ch.setDown(p, fmt.Sprintf("log unwritable for %s", hold.Round(time.Second)))
	os.Chmod(p.log, 0o400)
	os.Chmod(dir, 0o500)
	time.AfterFunc(hold, func() {
		os.Chmod(dir, dirInfo.Mode().Perm())
		os.Chmod(p.log, logInfo.Mode().Perm())
		ch.up(p, "log writable")
	})
}

// restoreAll brings every peer back up.
func (ch *chaos) restoreAll() {
	for _, p := range ch.c.peers {
		if p.sshd.Pid() == 0 {
			p.sshd.Start()
			ch.up(p, "sshd started (end)")
		}
	}
	for {
		ch.mu.Lock()
		n := len(ch.down)
		ch.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond) // a log made writable again soon
	}
}

func (ch *chaos) isDown(p *peer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.down[p]
}

func (ch *chaos) setDown(p *peer, what string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.down[p] = true
	ch.spans = append(ch.spans, span{p: p, from: time.Now()})
	ch.log = append(ch.log, fmt.Sprintf("%7s %s: %s", time.Since(ch.start).Round(time.Second), p.name, what))
}

func (ch *chaos) up(p *peer, what string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	delete(ch.down, p)
	for i := range ch.spans {
		if ch.spans[i].p == p && ch.spans[i].to.IsZero() {
			ch.spans[i].to = time.Now()
		}
	}
	ch.log = append(ch.log, fmt.Sprintf("%7s %s: %s", time.Since(ch.start).Round(time.Second), p.name, what))
}

func (ch *chaos) note(what string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.log = append(ch.log, fmt.Sprintf("%7s %s", time.Since(ch.start).Round(time.Second), what))
}

// upThrough reports whether p was up from from to to.
func (ch *chaos) upThrough(p *peer, from, to time.Time) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, s := range ch.spans {
		end := s.to
		if end.IsZero() {
			end = time.Now()
		}
		if s.p == p && s.from.Before(to) && end.After(from) {
			return false
		}
	}
	return true
}

// returns lists when p came back up.
func (ch *chaos) returns(p *peer) []time.Time {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var out []time.Time
	for _, s := range ch.spans {
		if s.p == p && !s.to.IsZero() {
			out = append(out, s.to)
		}
	}
	return out
}

// quantile is the p-th quantile of ds (nearest rank), 0 for none.
func quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
