package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
)

// s7Partial is scenario 7: how long a ban takes to reach every live peer
// while a third of the peers are bad (in turn a closed port, an address
// that drops packets, a tarpit that accepts and never answers), beside the
// same with only the live peers. Bans go out inside the sender's linger
// (300 ms apart, on open connections) and after it (12 s apart, on new
// ones), one push each, as fail2ban runs them.
func (b *bench) s7Partial(up *setup) error {
	nBad := (len(up.peers) + 1) / 2
	var ports []int
	for i := range nBad {
		p, err := sshdtest.ReservePort()
		if err != nil {
			return err
		}
		b.cl.add(func() { p.Close() })
		var h *sshdtest.Hole
		switch i % 3 {
		case 1:
			h, err = p.Blackhole()
		case 2:
			h, err = p.Tarpit(false)
		}
		if err != nil {
			return err
		}
		if h != nil {
			b.cl.add(func() { h.Close() })
		}
		ports = append(ports, p.Number)
	}
	part, err := b.newSetup("s7-partial", up.peers, ports...)
	if err != nil {
		return err
	}
	all, err := b.spreadBans(up)
	if err != nil {
		return err
	}
	some, err := b.spreadBans(part)
	if err != nil {
		return err
	}
	b.killSenders(part) // it would retry the bad peers until the end
	name := fmt.Sprintf("7. ban to all %d live peers, %d of %d peers bad (closed, blackholed, tarpit): p50", len(up.peers), nBad, len(up.peers)+nBad)
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtN(pct(some, 0.5), len(some)), baseline: "all up " + fmtN(pct(all, 0.5), len(all)),
			ratio: ratio(pct(some, 0.5), pct(all, 0.5)), target: "<= 1 s", met: metIf(pct(some, 0.5) <= time.Second)},
		row{scenario: "7. the same: p99 (max)", banpush: fmt.Sprintf("%s (max %s)", fmtDur(pct(some, 0.99)), fmtDur(maxDur(some))),
			baseline: fmt.Sprintf("all up %s (max %s)", fmtDur(pct(all, 0.99)), fmtDur(maxDur(all))),
			ratio:    ratio(pct(some, 0.99), pct(all, 0.99)), target: "<= 1 s", met: metIf(pct(some, 0.99) <= time.Second)},
	)
	return nil
}

// spreadBans pushes reps bans 300 ms apart, then 3 more 12 s apart, and
// returns for each how long it took from the push's start until it was in
// every live peer's log.
func (b *bench) spreadBans(s *setup) ([]time.Duration, error) {
	if err := b.stopSender(s); err != nil {
		return nil, err
	}
	var ds []time.Duration
	one := func() error {
		ip := b.addr.next()
		start := time.Now()
		if _, err := b.push(s, ip); err != nil {
			return err
		}
		at, err := b.waitLogged(s.peers, []string{ip}, 30*time.Second)
		if err != nil {
			return err
		}
		ds = append(ds, at.Sub(start))
		return nil
	}
	for range b.o.reps {
		start := time.Now()
		if err := one(); err != nil {
			return nil, err
		}
		sleep(b.ctx, time.Until(start.Add(300*time.Millisecond)))
	}
	for range 3 {
		if !sleep(b.ctx, 12*time.Second) {
			return nil, b.ctx.Err()
		}
		if err := one(); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// pct is the p-th quantile of ds (nearest rank).
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
