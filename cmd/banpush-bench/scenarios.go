package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
)

// s1Action is scenario 1: what fail2ban waits for, with all peers up and
// with one that accepts TCP but never answers.
func (b *bench) s1Action() error {
	up, err := b.newSetup("s1-up", b.peers[:b.o.peers])
	if err != nil {
		return err
	}
	deadPort, err := tarpit(b.cl)
	if err != nil {
		return err
	}
	live := b.peers[:b.o.peers-1]
	dead, err := b.newSetup("s1-dead", live, deadPort)
	if err != nil {
		return err
	}
	var floor []time.Duration
	for _, c := range []struct {
		s    *setup
		what string
	}{{up, fmt.Sprintf("all %d up", b.o.peers)}, {dead, "1 never answers"}} {
		var ds []time.Duration
		ips := b.addr.take(b.o.reps)
		for _, ip := range ips {
			d, err := b.shPush(c.s, ip)
			if err != nil {
				return err
			}
			ds = append(ds, d)
			// The floor, run the same way right after, under the same
			// load (the sender delivering meanwhile included).
			f, _, err := b.timeSh(c.s.env(), `'`+b.floor+`' "$1" 2>&1 | cat`, ip)
			if err != nil {
				return err
			}
			floor = append(floor, f)
		}
		// The bans must still arrive at every live peer.
		if _, err := b.waitLogged(c.s.peers, ips, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
		if err := b.stopSender(c.s); err != nil {
			return err
		}
		var bs []time.Duration
		for range b.o.baselineReps {
			d, _, err := b.runScript(c.s.scripts.seed, b.addr.next())
			if err != nil && c.s == up {
				return err
			}
			bs = append(bs, d)
		}
		bm, sm := median(ds), median(bs)
		b.rows = append(b.rows, row{
			scenario: fmt.Sprintf("1. `push IP 2>&1 \\| cat`, %d peers, %s", b.o.peers, c.what),
			banpush:  fmt.Sprintf("%s (n=%d, max %s)", fmtDur(bm), len(ds), fmtDur(maxDur(ds))),
			baseline: fmt.Sprintf("seed loop %s (n=%d)", fmtDur(sm), len(bs)),
			ratio:    ratio(bm, sm),
			target:   "<= 15 ms",
			met:      metIf(bm <= 15*time.Millisecond),
		})
		if c.s == dead {
			b.s1Dead = bm
			fm := median(floor)
			b.rows = append(b.rows, row{
				scenario: "1. the same, 1 never answers, against the floor: `floor IP 2>&1 \\| cat`",
				banpush:  fmt.Sprintf("%s (n=%d)", fmtDur(bm), len(ds)),
				baseline: fmt.Sprintf("floor %s (n=%d, max %s)", fmtDur(fm), len(floor), fmtDur(maxDur(floor))),
				ratio:    ratio(bm, fm),
				target:   "<= 2.5 x floor",
				met:      metIf(fm > 0 && bm*10 <= fm*25),
			})
		}
	}
	b.notes = append(b.notes, "Scenario 1: the floor is a Go program whose main only writes \"hi\" (CGO_ENABLED=0 -trimpath, as banpush), run through the same `sh -c '... 2>&1 | cat'` right after each push, so that both see the same load; its runs of both cases are pooled.")
	b.notes = append(b.notes, "Scenario 1: the seed loop runs ssh with ConnectTimeout=5, as banpush's inventory does; the peer that never answers costs it those 5 s (OpenSSH applies ConnectTimeout to the banner exchange too). The 20 bans of each case were then awaited in every live peer's log.")
	return nil
}

// cost is what one ban cost: the time until it was in every log, the CPU
// time of the pushing side and that of all the peers' sshd (every
// connection and session process, the shell and the receiver included).
type cost struct {
	wall, client, server time.Duration
	lost                 int // peers the ban never reached (lossy baselines only)
}

func medianCost(cs []cost) cost {
	var w, c, s []time.Duration
	for _, x := range cs {
		w, c, s = append(w, x.wall), append(c, x.client), append(s, x.server)
	}
	return cost{wall: median(w), client: median(c), server: median(s)}
}

func (c cost) cpu() string {
	return fmt.Sprintf("%s + %s", fmtDur(c.client), fmtDur(c.server))
}

// senderSettle is how long after a delivery a lingering sender has saved
// each peer's state and cursor (deliver's stateEvery and cursorEvery, 1 s).
const senderSettle = 1500 * time.Millisecond

// coldBan pushes one ban with no sender running, waits until it is in
// every log, and stops the sender again. It also returns the sender's peak
// RSS in KiB.
func (b *bench) coldBan(s *setup, timeout time.Duration) (cost, int, error) {
	if err := b.stopSender(s); err != nil {
		return cost{}, 0, err
	}
	srv := b.peersCPU(s.peers)
	ip := b.addr.next()
	start := time.Now()
	pushCPU, err := b.push(s, ip)
	if err != nil {
		return cost{}, 0, err
	}
	at, err := b.waitLogged(s.peers, []string{ip}, timeout)
	if err != nil {
		return cost{}, 0, err
	}
	c := cost{wall: at.Sub(start), client: pushCPU}
	// The sender lingers: its peak RSS so far and its CPU time are there
	// to be read, once it has saved each peer's state and cursor, a second
	// after delivering (that CPU is part of the ban's cost too).
	sleep(b.ctx, senderSettle)
	hwm := 0
	pids := s.senders()
	for _, pid := range pids {
		hwm = max(hwm, procStatusKiB(pid, "VmHWM:"))
	}
	c.client += treeCPU(pids...)
	if err := b.stopSender(s); err != nil {
		return cost{}, 0, err
	}
	c.server = b.peersCPU(s.peers) - srv
	return c, hwm, nil
}

// scriptBan runs a baseline script for one new ban and waits until it is
// in every log. A lossy one counts the peers the ban has not reached within
// timeout after the script (and every ssh it ran) ended, instead of
// failing: ssh gives up after ConnectTimeout, and the recipe loses the ban.
func (b *bench) scriptBan(s *setup, script string, timeout time.Duration, lossy bool) (cost, error) {
	srv := b.peersCPU(s.peers)
	masters := treeCPU(s.masters...)
	ip := b.addr.next()
	start := time.Now()
	_, cpu, err := b.runScript(script, ip)
	if err != nil {
		return cost{}, err
	}
	ended := time.Now()
	at, err := b.waitLogged(s.peers, []string{ip}, timeout)
	lost := 0
	if lossy && errors.Is(err, errTimeout) {
		at, err = ended, nil
		for _, p := range s.peers {
			if err := b.logs[p].update(); err != nil {
				return cost{}, err
			}
			if !b.logs[p].seen[ip] {
				lost++
			}
		}
	}
	if err != nil {
		return cost{}, err
	}
	return cost{
		wall:   at.Sub(start),
		client: cpu + treeCPU(s.masters...) - masters,
		server: b.peersCPU(s.peers) - srv,
		lost:   lost,
	}, nil
}

func (b *bench) scriptBans(s *setup, script string, reps int, timeout time.Duration) ([]cost, error) {
	return b.scriptBansLossy(s, script, reps, timeout, false)
}

func (b *bench) scriptBansLossy(s *setup, script string, reps int, timeout time.Duration, lossy bool) ([]cost, error) {
	var cs []cost
	for range reps {
		c, err := b.scriptBan(s, script, timeout, lossy)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// s2OneBan is scenario 2: one ban to every peer, cold, until it is in every
// log.
func (b *bench) s2OneBan(s *setup) error {
	var cs []cost
	for range b.o.coldReps {
		c, _, err := b.coldBan(s, 30*time.Second)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	par, err := b.scriptBans(s, s.scripts.parallel, b.o.coldReps, 30*time.Second)
	if err != nil {
		return err
	}
	if err := b.openMasters(s); err != nil {
		return err
	}
	cm, err := b.scriptBans(s, s.scripts.master, b.o.coldReps, 30*time.Second)
	if err != nil {
		return err
	}
	bm, pm, cmm := medianCost(cs), medianCost(par), medianCost(cm)
	name := fmt.Sprintf("2. one ban to %d peers, in every log (cold)", len(s.peers))
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtN(bm.wall, len(cs)), baseline: "parallel ssh " + fmtN(pm.wall, len(par)),
			ratio: ratio(bm.wall, pm.wall), target: "<= 0.25 x parallel ssh", met: metIf(bm.wall <= pm.wall/4)},
		row{scenario: name, banpush: fmtN(bm.wall, len(cs)), baseline: "ControlMaster " + fmtN(cmm.wall, len(cm)),
			ratio: ratio(bm.wall, cmm.wall), target: "-", met: "-"},
		row{scenario: "2. CPU per cold ban: pusher + all peers' sshd", banpush: bm.cpu(),
			baseline: "parallel ssh " + pm.cpu() + "; ControlMaster " + cmm.cpu(),
			ratio:    ratio(bm.client+bm.server, pm.client+pm.server), target: "-", met: "-"},
		row{scenario: "2. cold ban: banpush's own CPU (push and sender), share of all CPU", banpush: share(bm.client, bm.client+bm.server),
			baseline: "parallel ssh: ssh's share " + share(pm.client, pm.client+pm.server), ratio: "-", target: "(report)", met: "-"},
		row{scenario: "2. peers' CPU per connection (every process under their sshd)", banpush: fmtDur(bm.server / time.Duration(len(s.peers))),
			baseline: "parallel ssh " + fmtDur(pm.server/time.Duration(len(s.peers))),
			ratio:    ratio(bm.server, pm.server), target: "<= parallel ssh", met: metIf(bm.server <= pm.server)},
	)
	return b.s2ByProgram(s)
}

// s2ByProgram splits the peers' CPU per connection of a cold ban by
// program, for banpush and for parallel ssh, when perf(1) is installed.
func (b *bench) s2ByProgram(s *setup) error {
	reps := max(3, b.o.coldReps)
	before := b.peersCPU(s.peers)
	bp, err := b.cpuByProgram(listeners(s.peers), func() error {
		for range reps {
			if _, _, err := b.coldBan(s, 30*time.Second); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || bp == nil {
		return err
	}
	var perfTotal time.Duration
	for _, d := range bp {
		perfTotal += d
	}
	b.notes = append(b.notes, fmt.Sprintf("Scenario 2 by program: perf counted %s of the peers' CPU, their cgroups %s.", fmtDur(perfTotal), fmtDur(b.peersCPU(s.peers)-before)))
	ps, err := b.cpuByProgram(listeners(s.peers), func() error {
		_, err := b.scriptBans(s, s.scripts.parallel, reps, 30*time.Second)
		return err
	})
	if err != nil {
		return err
	}
	conns := time.Duration(reps * len(s.peers))
	split := func(by map[string]time.Duration) string {
		return fmt.Sprintf("sshd %s, sh %s, receiver %s", fmtDur(by["sshd"]/conns), fmtDur(by["sh"]/conns), fmtDur(by["banpush"]/conns))
	}
	b.rows = append(b.rows, row{scenario: "2. the same, by program (perf, n=" + strconv.Itoa(reps) + " bans each)", banpush: split(bp),
		baseline: "parallel ssh " + split(ps), ratio: ratio(bp["sshd"], ps["sshd"]) + " (sshd)", target: "(report)", met: "-"})
	return nil
}

// share is a as a percentage of all.
func share(a, all time.Duration) string {
	if all <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(all))
}

// s3Burst is scenario 3: many distinct bans, one push each, back to back.
func (b *bench) s3Burst(s *setup) error {
	if err := b.stopSender(s); err != nil {
		return err
	}
	ips := b.addr.take(b.o.burst)
	conns0, err := b.connections(s.peers)
	if err != nil {
		return err
	}
	var pushes []time.Duration
	start := time.Now()
	for _, ip := range ips {
		t := time.Now()
		if _, err := b.push(s, ip); err != nil {
			return err
		}
		pushes = append(pushes, time.Since(t))
	}
	pushed := time.Since(start)
	at, err := b.waitLogged(s.peers, ips, 3*time.Minute)
	if err != nil {
		return err
	}
	d := at.Sub(start)
	conns, err := b.connections(s.peers)
	if err != nil {
		return err
	}
	conns -= conns0
	if err := b.stopSender(s); err != nil {
		return err
	}
	// The floor of a burst: as many runs of the floor program, started
	// as the pushes were, back to back (with no sender beside them).
	start = time.Now()
	for range ips {
		cmd := command(b.ctx, b.floor, "203.0.113.1")
		cmd.Env = s.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("floor: %v\n%s", err, out)
		}
	}
	floor := time.Since(start)

	k := b.o.burstBaseline
	bips := b.addr.take(k)
	if conns0, err = b.connections(s.peers); err != nil {
		return err
	}
	start = time.Now()
	for _, ip := range bips {
		if _, _, err := b.runScript(s.scripts.parallel, ip); err != nil {
			return err
		}
	}
	bat, err := b.waitLogged(s.peers, bips, time.Minute)
	if err != nil {
		return err
	}
	scale := float64(len(ips)) / float64(k)
	bd := time.Duration(float64(bat.Sub(start)) * scale)
	bconns, err := b.connections(s.peers)
	if err != nil {
		return err
	}
	bconns = int(float64(bconns-conns0) * scale)
	name := fmt.Sprintf("3. burst: %d pushes to %d peers, all %d lines logged", len(ips), len(s.peers), len(ips)*len(s.peers))
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtDur(d), baseline: fmt.Sprintf("parallel ssh %s (%d bans measured x %.0f, extrapolated)", fmtDur(bd), k, scale),
			ratio: ratio(d, bd), target: "<= 4 s", met: metIf(d <= 4*time.Second)},
		row{scenario: "3. burst: SSH connections opened (sshd logs)", banpush: fmt.Sprintf("%d (%.1f per peer)", conns, float64(conns)/float64(len(s.peers))),
			baseline: fmt.Sprintf("parallel ssh %d (%d measured x %.0f, extrapolated)", bconns, int(float64(bconns)/scale), scale),
			ratio:    fmt.Sprintf("%.4f", float64(conns)/float64(max(bconns, 1))), target: "a few per peer",
			met: metIf(conns <= 5*len(s.peers))},
		row{scenario: "3. burst: each `banpush push` (back to back)", banpush: fmt.Sprintf("%s (max %s; all %d queued in %s)", fmtDur(median(pushes)), fmtDur(maxDur(pushes)), len(ips), fmtDur(pushed)),
			baseline: fmt.Sprintf("floor: %d runs back to back in %s", len(ips), fmtDur(floor)), ratio: ratio(pushed, floor), target: "-", met: "-"},
	)
	return nil
}

// s4Warm is scenario 4: pushes while the sender lingers with its
// connections open, against ssh over open ControlMaster connections.
func (b *bench) s4Warm(s *setup) error {
	if err := b.stopSender(s); err != nil {
		return err
	}
	warm := b.addr.next()
	if _, err := b.push(s, warm); err != nil {
		return err
	}
	if _, err := b.waitLogged(s.peers, []string{warm}, 30*time.Second); err != nil {
		return err
	}
	senders := s.senders()
	if len(senders) != 1 {
		return fmt.Errorf("%d senders running after the first push, want 1", len(senders))
	}
	ds, after, bc, err := b.spacedBans(s, func(ip string) (time.Duration, error) { return b.push(s, ip) }, senders)
	if err != nil {
		return err
	}
	pushAfter := median(after)
	if got := s.senders(); len(got) != 1 || got[0] != senders[0] {
		b.notes = append(b.notes, fmt.Sprintf("Scenario 4: the sender changed during the pushes (%v, then %v): not all of them were warm.", senders, got))
	}
	if err := b.stopSender(s); err != nil {
		return err
	}
	if err := b.openMasters(s); err != nil {
		return err
	}
	cm, _, cc, err := b.spacedBans(s, func(ip string) (time.Duration, error) {
		_, cpu, err := b.runScript(s.scripts.master, ip)
		return cpu, err
	}, s.masters)
	if err != nil {
		return err
	}
	bm, cmm := median(ds), median(cm)
	name := fmt.Sprintf("4. warm: push to in all %d logs, sender lingering", len(s.peers))
	target, met := "<= scenario 1 + 2 ms", "-"
	if b.s1Dead > 0 {
		target = fmt.Sprintf("<= %s (scenario 1, 1 never answers, + 2 ms)", fmtDur(b.s1Dead+2*time.Millisecond))
		met = metIf(bm <= b.s1Dead+2*time.Millisecond)
	}
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmt.Sprintf("%s (n=%d, max %s)", fmtDur(bm), len(ds), fmtDur(maxDur(ds))),
			baseline: "ControlMaster " + fmtN(cmm, len(cm)), ratio: ratio(bm, cmm), target: target, met: met},
		row{scenario: "4. warm: of which after `banpush push` returned, until in all logs", banpush: fmtN(pushAfter, len(ds)),
			baseline: "-", ratio: "-", target: "(report)", met: "-"},
		row{scenario: "4. CPU per warm ban: pusher (push and sender) + all peers' sshd (mean)", banpush: bc.cpu(), baseline: "ControlMaster " + cc.cpu(),
			ratio: ratio(bc.client+bc.server, cc.client+cc.server), target: "-", met: "-"},
	)
	return nil
}

// spacedBans runs f for reps new bans, 100 ms apart, and returns how long
// each took to be in every log, from f's start and from its return, and
// the CPU of all of them: clientPIDs' (and f's own) and the peers'.
func (b *bench) spacedBans(s *setup, f func(ip string) (time.Duration, error), clientPIDs []int) (ds, after []time.Duration, c cost, err error) {
	srv, cli := b.peersCPU(s.peers), treeCPU(clientPIDs...)
	for range b.o.reps {
		ip := b.addr.next()
		start := time.Now()
		cpu, err := f(ip)
		if err != nil {
			return nil, nil, c, err
		}
		returned := time.Now()
		c.client += cpu
		at, err := b.waitLogged(s.peers, []string{ip}, 30*time.Second)
		if err != nil {
			return nil, nil, c, err
		}
		ds = append(ds, at.Sub(start))
		after = append(after, at.Sub(returned))
		sleep(b.ctx, time.Until(start.Add(100*time.Millisecond)))
	}
	n := time.Duration(b.o.reps)
	c.client = (c.client + treeCPU(clientPIDs...) - cli) / n
	c.server = (b.peersCPU(s.peers) - srv) / n
	return ds, after, c, nil
}

// s5FanOut is scenario 5: one ban to many peers, at two sizes, for the
// growth; the sender's peak RSS; the CPU of both sides.
func (b *bench) s5FanOut() error {
	t := time.Now()
	if err := b.startPeers(b.o.fanout); err != nil {
		return err
	}
	started := time.Since(t)
	ds := daemons(b.peers[:b.o.fanout])
	rss := 0
	for _, d := range ds {
		rss += procStatusKiB(d.Pid(), "VmRSS:")
	}
	b.notes = append(b.notes, fmt.Sprintf("Scenario 5: %d peers on %d sshd listeners (the first %d with an sshd each, the others %d ports to an sshd, each port with its own authorized_keys through Match LocalPort, and %q), all on 127.0.0.1; brought up in %s, %.1f MiB RSS in all.",
		b.o.fanout, len(ds), b.o.peers, portsPerSSHD, sharedMaxStartups, fmtDur(started), float64(rss)/1024))
	var sizes []*fanSize
	for _, n := range []int{b.o.fanoutSmall, b.o.fanout} {
		if len(sizes) > 0 && sizes[len(sizes)-1].n == n {
			continue
		}
		z, err := b.fanOutBanpush(n)
		if err != nil {
			return err
		}
		sizes = append(sizes, z)
	}
	for _, z := range sizes {
		if err := b.fanOutBaseline(z); err != nil {
			return err
		}
	}
	for _, z := range sizes {
		b.fanOutRows(z)
	}
	if len(sizes) == 2 {
		b.fanOutGrowth(sizes[0], sizes[1])
	}
	if b.o.fanout > waveSize {
		b.notes = append(b.notes, fmt.Sprintf("Scenario 5: the baseline for more than %d peers runs ssh %d at a time (wait between waves), once: all %d at once would measure memory and sshd's start-up limits rather than ssh, and take minutes.", waveSize, waveSize, b.o.fanout))
	}
	return nil
}

// fanSize is one size of scenario 5: its setup, and what each side cost.
type fanSize struct {
	n        int
	s        *setup
	cs       []cost
	hwm      int
	bm, pm   cost
	baseline string
}

// fanOutBanpush measures banpush's cold bans to the first n peers.
func (b *bench) fanOutBanpush(n int) (*fanSize, error) {
	s, err := b.newSetup(fmt.Sprintf("s5-%d", n), b.peers[:n])
	if err != nil {
		return nil, err
	}
	z := &fanSize{n: n, s: s}
	for range b.o.fanoutReps {
		c, h, err := b.coldBan(s, 2*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("%d peers: %w", n, err)
		}
		z.cs = append(z.cs, c)
		z.hwm = max(z.hwm, h)
	}
	z.bm = medianCost(z.cs)
	return z, nil
}

// fanOutBaseline measures parallel ssh on the same peers: all at once up
// to waveSize peers, in waves beyond.
func (b *bench) fanOutBaseline(z *fanSize) error {
	script, reps := z.s.scripts.parallel, b.o.baselineReps
	z.baseline = "parallel ssh"
	if z.n > waveSize {
		script, reps = z.s.scripts.waves, 1
		z.baseline = fmt.Sprintf("parallel ssh, %d at a time", waveSize)
	}
	par, err := b.scriptBansLossy(z.s, script, reps, 20*time.Second, true)
	if err != nil {
		return fmt.Errorf("%d peers, %s: %w", z.n, z.baseline, err)
	}
	z.pm = medianCost(par)
	z.baseline += " " + fmtN(z.pm.wall, len(par))
	lost := 0
	for _, c := range par {
		lost += c.lost
	}
	if lost > 0 {
		z.baseline += fmt.Sprintf("; the ban never reached %d of %d peers", lost, z.n*len(par))
	}
	return nil
}

// fanOutRows adds the rows of one size.
func (b *bench) fanOutRows(z *fanSize) {
	name := fmt.Sprintf("5. fan-out: one ban to %d peers", z.n)
	target, met := "-", "-"
	if z.n == b.o.fanout {
		target, met = "<= 0.25 x parallel ssh", metIf(z.bm.wall <= z.pm.wall/4)
	}
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtN(z.bm.wall, len(z.cs)), baseline: z.baseline,
			ratio: ratio(z.bm.wall, z.pm.wall), target: target, met: met},
		row{scenario: name + ": CPU, pusher (push and sender) + all peers' sshd", banpush: z.bm.cpu(), baseline: "parallel ssh " + z.pm.cpu(),
			ratio: ratio(z.bm.client+z.bm.server, z.pm.client+z.pm.server), target: "-", met: "-"},
		row{scenario: name + ": peers' CPU per connection", banpush: fmtDur(z.bm.server / time.Duration(z.n)),
			baseline: "parallel ssh " + fmtDur(z.pm.server/time.Duration(z.n)),
			ratio:    ratio(z.bm.server, z.pm.server), target: "<= parallel ssh", met: metIf(z.bm.server <= z.pm.server)},
		row{scenario: name + ": sender peak RSS (VmHWM)", banpush: fmt.Sprintf("%.1f MiB", float64(z.hwm)/1024),
			baseline: "-", ratio: "-", target: "<= 64 MiB", met: metIf(z.hwm > 0 && z.hwm <= 64*1024)},
	)
}

// fanOutGrowth adds the rows of the growth from the small size to the
// large one.
func (b *bench) fanOutGrowth(lo, hi *fanSize) {
	k := float64(hi.n) / float64(lo.n)
	g := float64(hi.bm.wall) / float64(lo.bm.wall)
	b.rows = append(b.rows, row{
		scenario: fmt.Sprintf("5. fan-out growth, %d -> %d peers (x%.0f): time", lo.n, hi.n, k),
		banpush:  fmt.Sprintf("x%.2f", g),
		baseline: fmt.Sprintf("parallel ssh x%.2f", float64(hi.pm.wall)/float64(lo.pm.wall)),
		ratio:    "-", target: fmt.Sprintf("<= x%.0f (linear)", k), met: metIf(g <= k),
	}, row{
		scenario: fmt.Sprintf("5. fan-out growth, %d -> %d peers: sender peak RSS", lo.n, hi.n),
		banpush:  fmt.Sprintf("x%.2f (%.1f -> %.1f MiB)", float64(hi.hwm)/float64(max(lo.hwm, 1)), float64(lo.hwm)/1024, float64(hi.hwm)/1024),
		baseline: "-", ratio: "-", target: "(report)", met: "-",
	})
}

// s6Receiver is scenario 6: the CPU time of one receiver run per batch,
// run as sshd runs the forced command (the authorized_keys command= text,
// through root's login shell), outside sshd, measured from its rusage.
func (b *bench) s6Receiver() error {
	dir := filepath.Join(b.dir, "s6")
	if err := b.acct.ownedDir(dir); err != nil {
		return err
	}
	log := filepath.Join(dir, "received.log")
	line, err := command(b.ctx, b.bin, "authorize", "--peer", "pusher", "--log", log,
		"--binary", b.bin, "--max-burst", rateLimit, "--max-per-minute", rateLimit, b.pub).Output()
	if err != nil {
		return fmt.Errorf("banpush authorize: %w", err)
	}
	forced, err := forcedCommand(string(line))
	if err != nil {
		return err
	}
	shell := b.acct.shell
	env := []string{"PATH=/usr/bin:/bin", "HOME=/", "SSH_ORIGINAL_COMMAND=" + wire.Ban.String(),
		"SSH_CONNECTION=127.0.0.1 40000 127.0.0.1 22"}
	for _, n := range []int{1, 1000} {
		reps := b.o.reps
		var viaShell, direct, wall []time.Duration
		for range reps {
			var batch bytes.Buffer
			for _, ip := range b.addr.take(n) {
				fmt.Fprintf(&batch, "%s jail=sshd time=%d bantime=600\n", ip, time.Now().Unix())
			}
			for _, how := range []string{"shell", "direct"} {
				var cmd *exec.Cmd
				if how == "shell" {
					cmd = command(b.ctx, shell, "-c", forced)
				} else {
					cmd = command(b.ctx, b.bin, "receive", "--peer", "pusher", "--log", log,
						"--max-burst", rateLimit, "--max-per-minute", rateLimit)
				}
				cmd.Env = env
				if c := b.acct.credential(); c != nil {
					cmd.SysProcAttr.Credential = c.Credential
				}
				cmd.Stdin = bytes.NewReader(batch.Bytes())
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				t := time.Now()
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("receive (%s): %v\n%s", how, err, out.String())
				}
				if !strings.Contains(out.String(), fmt.Sprintf("accepted=%d ", n)) {
					return fmt.Errorf("receive (%s): %s", how, out.String())
				}
				cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				if how == "shell" {
					viaShell = append(viaShell, cpu)
					wall = append(wall, time.Since(t))
				} else {
					direct = append(direct, cpu)
				}
			}
		}
		b.rows = append(b.rows, row{
			scenario: fmt.Sprintf("6. receiver CPU (user+sys), batch of %d", n),
			banpush:  fmt.Sprintf("%s (%s without the shell; wall %s)", fmtN(median(viaShell), reps), fmtDur(median(direct)), fmtDur(median(wall))),
			baseline: "-", ratio: "-", target: "(report)", met: "-",
		})
	}
	b.notes = append(b.notes, fmt.Sprintf("Scenario 6: the authorized_keys command= text run with %s -c (as sshd runs a forced command), as the receiving account, outside sshd, with SSH_ORIGINAL_COMMAND set and the batch on stdin; CPU is the child's rusage (user+sys, the shell included, fsync of the log included). A fresh address each record.", shell))
	return nil
}

// forcedCommand extracts the command="..." text of an authorized_keys line.
func forcedCommand(line string) (string, error) {
	const key = `command="`
	i := strings.Index(line, key)
	if i < 0 {
		return "", fmt.Errorf("no command= in %q", line)
	}
	rest := line[i+len(key):]
	var out strings.Builder
	for j := 0; j < len(rest); j++ {
		switch c := rest[j]; {
		case c == '\\' && j+1 < len(rest) && rest[j+1] == '"':
			out.WriteByte('"')
			j++
		case c == '"':
			return out.String(), nil
		default:
			out.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unterminated command= in %q", line)
}
