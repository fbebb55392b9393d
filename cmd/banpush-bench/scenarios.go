package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// s1Action is scenario 1: what fail2ban waits for, with all peers up and
// with one that accepts TCP but never answers.
func (b *bench) s1Action() error {
	up, err := b.newSetup("s1-up", b.peers[:b.o.peers], 0)
	if err != nil {
		return err
	}
	deadPort, err := blackhole(b.cl)
	if err != nil {
		return err
	}
	live := b.peers[:b.o.peers-1]
	dead, err := b.newSetup("s1-dead", live, deadPort)
	if err != nil {
		return err
	}
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
			d, err := b.runScript(c.s.scripts.seed, b.addr.next())
			if err != nil && c.s == up {
				return err
			}
			bs = append(bs, d)
		}
		bm, sm := median(ds), median(bs)
		b.rows = append(b.rows, row{
			scenario: fmt.Sprintf("1. `push IP 2>&1 | cat`, %d peers, %s", b.o.peers, c.what),
			banpush:  fmt.Sprintf("%s (n=%d, max %s)", fmtDur(bm), len(ds), fmtDur(maxDur(ds))),
			baseline: fmt.Sprintf("seed loop %s (n=%d)", fmtDur(sm), len(bs)),
			ratio:    ratio(bm, sm),
			target:   "<= 15 ms",
			met:      metIf(bm <= 15*time.Millisecond),
		})
	}
	b.notes = append(b.notes, "Scenario 1: the seed loop runs ssh with ConnectTimeout=5, as banpush's inventory does; the peer that never answers costs it those 5 s (OpenSSH applies ConnectTimeout to the banner exchange too). The 20 bans of each case were then awaited in every live peer's log.")
	return nil
}

// s2OneBan is scenario 2: one ban to every peer, cold, until it is in every
// log.
func (b *bench) s2OneBan(s *setup) error {
	var ds []time.Duration
	for range b.o.coldReps {
		if err := b.stopSender(s); err != nil {
			return err
		}
		ip := b.addr.next()
		start := time.Now()
		if err := b.push(s, ip); err != nil {
			return err
		}
		at, err := b.waitLogged(s.peers, []string{ip}, 30*time.Second)
		if err != nil {
			return err
		}
		ds = append(ds, at.Sub(start))
	}
	if err := b.stopSender(s); err != nil {
		return err
	}
	par, err := b.baselineUntilLogged(s, s.scripts.parallel, b.o.coldReps)
	if err != nil {
		return err
	}
	if err := b.openMasters(s); err != nil {
		return err
	}
	cm, err := b.baselineUntilLogged(s, s.scripts.master, b.o.coldReps)
	if err != nil {
		return err
	}
	bm, pm, cmm := median(ds), median(par), median(cm)
	name := fmt.Sprintf("2. one ban to %d peers, in every log (cold)", len(s.peers))
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtN(bm, len(ds)), baseline: "parallel ssh " + fmtN(pm, len(par)),
			ratio: ratio(bm, pm), target: "<= 0.3 x parallel ssh", met: metIf(bm <= pm*3/10)},
		row{scenario: name, banpush: fmtN(bm, len(ds)), baseline: "ControlMaster " + fmtN(cmm, len(cm)),
			ratio: ratio(bm, cmm), target: "-", met: "-"},
	)
	return nil
}

// baselineUntilLogged runs a baseline script reps times, each for a new
// ban, and times it until the ban is in every log.
func (b *bench) baselineUntilLogged(s *setup, script string, reps int) ([]time.Duration, error) {
	var ds []time.Duration
	for range reps {
		ip := b.addr.next()
		start := time.Now()
		if _, err := b.runScript(script, ip); err != nil {
			return nil, err
		}
		at, err := b.waitLogged(s.peers, []string{ip}, 30*time.Second)
		if err != nil {
			return nil, err
		}
		ds = append(ds, at.Sub(start))
	}
	return ds, nil
}

// s3Burst is scenario 3: many distinct bans, one push each, back to back.
func (b *bench) s3Burst(s *setup) error {
	if err := b.stopSender(s); err != nil {
		return err
	}
	ips := b.addr.take(b.o.burst)
	conns0 := b.connections(s.peers)
	var pushes []time.Duration
	start := time.Now()
	for _, ip := range ips {
		t := time.Now()
		if err := b.push(s, ip); err != nil {
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
	conns := b.connections(s.peers) - conns0
	if err := b.stopSender(s); err != nil {
		return err
	}

	k := b.o.burstBaseline
	bips := b.addr.take(k)
	conns0 = b.connections(s.peers)
	start = time.Now()
	for _, ip := range bips {
		if _, err := b.runScript(s.scripts.parallel, ip); err != nil {
			return err
		}
	}
	bat, err := b.waitLogged(s.peers, bips, time.Minute)
	if err != nil {
		return err
	}
	scale := float64(len(ips)) / float64(k)
	bd := time.Duration(float64(bat.Sub(start)) * scale)
	bconns := int(float64(b.connections(s.peers)-conns0) * scale)
	name := fmt.Sprintf("3. burst: %d pushes to %d peers, all %d lines logged", len(ips), len(s.peers), len(ips)*len(s.peers))
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtDur(d), baseline: fmt.Sprintf("parallel ssh %s (%d bans x %.0f, extrapolated)", fmtDur(bd), k, scale),
			ratio: ratio(d, bd), target: "<= 10 s", met: metIf(d <= 10*time.Second)},
		row{scenario: "3. burst: SSH connections opened (sshd logs)", banpush: fmt.Sprintf("%d (%.1f per peer)", conns, float64(conns)/float64(len(s.peers))),
			baseline: fmt.Sprintf("parallel ssh %d (%d measured x %.0f, extrapolated)", bconns, int(float64(bconns)/scale), scale),
			ratio:    fmt.Sprintf("%.4f", float64(conns)/float64(max(bconns, 1))), target: "a few per peer",
			met: metIf(conns <= 5*len(s.peers))},
		row{scenario: "3. burst: each `banpush push` (back to back)", banpush: fmt.Sprintf("%s (max %s; all %d queued in %s)", fmtDur(median(pushes)), fmtDur(maxDur(pushes)), len(ips), fmtDur(pushed)),
			baseline: "-", ratio: "-", target: "-", met: "-"},
	)
	return nil
}

// s4Warm is scenario 4: pushes while the sender lingers with its
// connections open, against ssh over open ControlMaster connections.
func (b *bench) s4Warm(s *setup) error {
	warm := b.addr.next()
	if err := b.push(s, warm); err != nil {
		return err
	}
	if _, err := b.waitLogged(s.peers, []string{warm}, 30*time.Second); err != nil {
		return err
	}
	spaced := func(f func(ip string) error) ([]time.Duration, error) {
		var ds []time.Duration
		for range b.o.reps {
			ip := b.addr.next()
			start := time.Now()
			if err := f(ip); err != nil {
				return nil, err
			}
			at, err := b.waitLogged(s.peers, []string{ip}, 30*time.Second)
			if err != nil {
				return nil, err
			}
			ds = append(ds, at.Sub(start))
			sleep(b.ctx, time.Until(start.Add(100*time.Millisecond)))
		}
		return ds, nil
	}
	ds, err := spaced(func(ip string) error { return b.push(s, ip) })
	if err != nil {
		return err
	}
	if len(s.senders()) != 1 {
		b.notes = append(b.notes, fmt.Sprintf("Scenario 4: %d senders running at the end (want 1 lingering).", len(s.senders())))
	}
	if err := b.stopSender(s); err != nil {
		return err
	}
	if err := b.openMasters(s); err != nil {
		return err
	}
	cm, err := spaced(func(ip string) error { _, err := b.runScript(s.scripts.master, ip); return err })
	if err != nil {
		return err
	}
	bm, cmm := median(ds), median(cm)
	b.rows = append(b.rows, row{
		scenario: fmt.Sprintf("4. warm: push to in all %d logs, sender lingering", len(s.peers)),
		banpush:  fmt.Sprintf("%s (n=%d, max %s)", fmtDur(bm), len(ds), fmtDur(maxDur(ds))),
		baseline: "ControlMaster " + fmtN(cmm, len(cm)),
		ratio:    ratio(bm, cmm), target: "<= 10 ms", met: metIf(bm <= 10*time.Millisecond),
	})
	return nil
}

// s5FanOut is scenario 5: one ban to many peers, and the sender's peak RSS.
func (b *bench) s5FanOut() error {
	t := time.Now()
	if err := b.startPeers(b.o.fanout); err != nil {
		return err
	}
	started := time.Since(t)
	rss := 0
	for _, p := range b.peers[:b.o.fanout] {
		rss += p.rssKiB()
	}
	b.notes = append(b.notes, fmt.Sprintf("Scenario 5: %d sshd listeners started in %s, %.1f MiB RSS in total (%.1f MiB each); no problem on this machine.",
		b.o.fanout, fmtDur(started), float64(rss)/1024, float64(rss)/1024/float64(b.o.fanout)))
	s, err := b.newSetup("s5", b.peers[:b.o.fanout], 0)
	if err != nil {
		return err
	}
	var ds []time.Duration
	hwm := 0
	for range b.o.fanoutReps {
		if err := b.stopSender(s); err != nil {
			return err
		}
		ip := b.addr.next()
		start := time.Now()
		if err := b.push(s, ip); err != nil {
			return err
		}
		at, err := b.waitLogged(s.peers, []string{ip}, time.Minute)
		if err != nil {
			return err
		}
		ds = append(ds, at.Sub(start))
		// VmHWM is the peak so far; the sender lingers, so it is still
		// there to be read.
		for _, pid := range s.senders() {
			hwm = max(hwm, procStatusKiB(pid, "VmHWM:"))
		}
	}
	if err := b.stopSender(s); err != nil {
		return err
	}
	par, err := b.baselineUntilLogged(s, s.scripts.parallel, b.o.baselineReps)
	if err != nil {
		return err
	}
	bm, pm := median(ds), median(par)
	name := fmt.Sprintf("5. fan-out: one ban to %d peers", b.o.fanout)
	b.rows = append(b.rows,
		row{scenario: name, banpush: fmtN(bm, len(ds)), baseline: "parallel ssh " + fmtN(pm, len(par)),
			ratio: ratio(bm, pm), target: "<= 5 s", met: metIf(bm <= 5*time.Second)},
		row{scenario: name + ": sender peak RSS (VmHWM)", banpush: fmt.Sprintf("%.1f MiB", float64(hwm)/1024),
			baseline: "-", ratio: "-", target: "<= 64 MiB", met: metIf(hwm > 0 && hwm <= 64*1024)},
	)
	return nil
}

// s6Receiver is scenario 6: the CPU time of one receiver run per batch,
// run as sshd runs the forced command (the authorized_keys command= text,
// through root's login shell), outside sshd, measured from its rusage.
func (b *bench) s6Receiver() error {
	dir := filepath.Join(b.dir, "s6")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	log := filepath.Join(dir, "received.log")
	line, err := exec.CommandContext(b.ctx, b.bin, "authorize", "--peer", "pusher", "--log", log,
		"--binary", b.bin, "--max-burst", rateLimit, "--max-per-minute", rateLimit, b.pub).Output()
	if err != nil {
		return fmt.Errorf("banpush authorize: %w", err)
	}
	forced, err := forcedCommand(string(line))
	if err != nil {
		return err
	}
	shell := loginShell()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SSH_ORIGINAL_COMMAND=banpush-v1 ban",
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
					cmd = exec.CommandContext(b.ctx, shell, "-c", forced)
				} else {
					cmd = exec.CommandContext(b.ctx, b.bin, "receive", "--peer", "pusher", "--log", log,
						"--max-burst", rateLimit, "--max-per-minute", rateLimit)
				}
				cmd.Env = env
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
	b.notes = append(b.notes, fmt.Sprintf("Scenario 6: the authorized_keys command= text run with %s -c (as sshd runs a forced command), outside sshd, with SSH_ORIGINAL_COMMAND set and the batch on stdin; CPU is the child's rusage (user+sys, the shell included, fsync of the log included). A fresh address each record.", shell))
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

// loginShell is the shell sshd would run the forced command with: root's
// from /etc/passwd.
func loginShell() string {
	b, err := os.ReadFile("/etc/passwd")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) == 7 && f[2] == fmt.Sprint(syscall.Getuid()) && f[6] != "" {
				return f[6]
			}
		}
	}
	return "/bin/sh"
}
