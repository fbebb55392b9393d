package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Scenario 9: scenario 3's burst carried to the peers' kernels. The pusher
// runs 'banpush push' for each of -burst addresses, back to back, to the
// -peers live peers; on each peer, the log its receiver writes is turned
// into a kernel set in a network namespace of the peer's own, first by
// 'banpush firewall' (the fast path), then, with a new burst, by a private
// fail2ban with the banpush jail and Debian's nftables-allports action (the
// fail2ban path), as in scenario 8. The clock runs from the first push
// until every peer's set holds every address of the burst.

// fleetFail2banTimeout bounds the fail2ban path: ten fail2ban servers
// running a thousand actions each can take longer than a bench should.
const fleetFail2banTimeout = 5 * time.Minute

// fleetBurst is how one burst reached the peers' kernels, from the first
// push.
type fleetBurst struct {
	pushed time.Duration   // until the last push returned
	logged time.Duration   // until every peer's log had every address (0: not in time)
	done   []time.Duration // per peer, until its set held every address (0: not in time)
	held   []int           // per peer, the burst's addresses its set held last
}

// fleetToKernel pushes a burst of n new addresses to s's peers and waits
// until each peer's set (sets[i] counts the burst's addresses in peer i's)
// holds all of them, or timeout.
func (b *bench) fleetToKernel(s *setup, sets []func(map[netip.Addr]bool) int, n int, timeout time.Duration) (fleetBurst, error) {
	ips := b.addr.take(n)
	want := make(map[netip.Addr]bool, n)
	for _, ip := range ips {
		want[netip.MustParseAddr(ip)] = true
	}
	r := fleetBurst{done: make([]time.Duration, len(sets)), held: make([]int, len(sets))}
	start := time.Now()
	for _, ip := range ips {
		if _, err := b.push(s, ip); err != nil {
			return r, err
		}
	}
	r.pushed = time.Since(start)
	logged := make(chan time.Time, 1)
	go func() {
		at, _ := b.waitLogged(s.peers, ips, timeout-time.Since(start))
		logged <- at
	}()
	for left := len(sets); left > 0 && time.Since(start) < timeout; {
		for i, count := range sets {
			if r.done[i] > 0 {
				continue
			}
			if r.held[i] = count(want); r.held[i] >= n {
				r.done[i] = time.Since(start)
				left--
			}
		}
		if !sleep(b.ctx, 50*time.Millisecond) {
			return r, b.ctx.Err()
		}
	}
	if at := <-logged; !at.IsZero() {
		r.logged = at.Sub(start)
	}
	return r, nil
}

// all is the time until every peer's set held the burst, or false.
func (r fleetBurst) all() (time.Duration, bool) {
	if slices.Contains(r.done, 0) {
		return 0, false
	}
	return slices.Max(r.done), true
}

// text is the burst's cell: the slowest peer's time and the fastest's, or
// how far the slowest peer got by the timeout; then when the pushes ended
// and the logs had it all.
func (r fleetBurst) text(path string, n int, timeout time.Duration) string {
	var t string
	if d, ok := r.all(); ok {
		t = fmt.Sprintf("%s %s (first peer %s", path, fmtDur(d), fmtDur(slices.Min(r.done)))
	} else {
		doneN := len(r.done) - len(slices.DeleteFunc(slices.Clone(r.done), func(d time.Duration) bool { return d > 0 }))
		t = fmt.Sprintf("%s: not done after %s, slowest peer's set held %d of %d (%d of %d peers done", path, timeout, slices.Min(r.held), n, doneN, len(r.done))
	}
	logged := "not all logged"
	if r.logged > 0 {
		logged = "all logged at " + fmtDur(r.logged)
	}
	return fmt.Sprintf("%s; pushes done at %s, %s)", t, fmtDur(r.pushed), logged)
}

func (b *bench) s9FleetFirewall(s *setup) error {
	if err := needFirewallTools(); err != nil {
		return err
	}
	if err := b.stopSender(s); err != nil {
		return err
	}
	n := b.o.burst

	// The fast path: 'banpush firewall' on each peer's log.
	var services []*firewallService
	var fastSets []func(map[netip.Addr]bool) int
	for _, p := range s.peers {
		dir := filepath.Join(b.dir, "s9", p.name)
		conf, state := filepath.Join(dir, "f2b-fast"), filepath.Join(dir, "firewall", "cursor")
		if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
			return err
		}
		if err := b.makeLog(p.banLog); err != nil {
			return err
		}
		if err := b.fail2banConf(conf, p.banLog, "[banpush]\naction =\n"); err != nil {
			return err
		}
		ns, err := b.newNetNS()
		if err != nil {
			return err
		}
		svc, _, err := b.startFirewall(ns, p.banLog, state, conf)
		if err != nil {
			return err
		}
		services = append(services, svc)
		fastSets = append(fastSets, func(want map[netip.Addr]bool) int { return fastSet(ns, want) })
	}
	fast, err := b.fleetToKernel(s, fastSets, n, time.Minute)
	for _, svc := range services {
		svc.stop(syscall.SIGTERM)
	}
	if err != nil {
		return err
	}
	if err := b.stopSender(s); err != nil {
		return err
	}

	// The fail2ban path: a fail2ban per peer, reading its log from the
	// end (tail), so that it bans the new burst and not the fast path's.
	var servers []*exec.Cmd
	var slowSets []func(map[netip.Addr]bool) int
	for _, p := range s.peers {
		conf := filepath.Join(b.dir, "s9", p.name, "f2b-slow")
		local := fmt.Sprintf("[banpush]\naction = nftables-allports[name=banpush]\nlogpath = %s tail\n", p.banLog)
		if err := b.fail2banConf(conf, p.banLog, local); err != nil {
			return err
		}
		ns, err := b.newNetNS()
		if err != nil {
			return err
		}
		server, err := b.startFail2ban(ns, conf)
		if err != nil {
			return err
		}
		servers = append(servers, server)
		slowSets = append(slowSets, func(want map[netip.Addr]bool) int { return fail2banSet(ns, want) })
	}
	slow, err := b.fleetToKernel(s, slowSets, n, fleetFail2banTimeout)
	for _, server := range servers {
		syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		return err
	}

	fastD, _ := fast.all()
	slowD, _ := slow.all()
	b.rows = append(b.rows, row{
		scenario: fmt.Sprintf("9. burst: %d pushes to %d peers, until every peer's kernel set holds all (from the first push)", n, len(s.peers)),
		banpush:  fast.text("fast path", n, time.Minute),
		baseline: slow.text("fail2ban path", n, fleetFail2banTimeout),
		ratio:    ratio(fastD, slowD),
		target:   "-", met: "-",
	})
	return nil
}
