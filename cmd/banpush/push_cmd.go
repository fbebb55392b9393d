package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// appendTimeout bounds the wait for the spool's append lock: push runs
// inside fail2ban's global action lock.
const appendTimeout = 5 * time.Second

// PushCmd queues bans for every peer; fail2ban runs it as actionban.
type PushCmd struct {
	DeliveryFlags
	Jail         string        `help:"Jail that banned the address (fail2ban's <name>)." placeholder:"NAME"`
	BanTime      string        `name:"bantime" help:"Ban duration in seconds, -1 for permanent (fail2ban's <bantime>)." placeholder:"SECONDS"`
	Time         string        `help:"When the ban happened, Unix seconds (fail2ban's <time>; a fraction is dropped)." placeholder:"UNIXSECONDS"`
	AllowPrivate bool          `help:"Queue private (RFC 1918, RFC 4193) and CGNAT addresses too; peers refuse them unless they allow them."`
	Wait         bool          `help:"Deliver now, in the foreground, and report per peer (exit 3 if any peer failed, 65 if any refused a ban)."`
	Timeout      time.Duration `help:"With --wait: how long to keep trying." default:"30s"`
	JSON         bool          `name:"json" help:"With --wait: print the report as JSON."`
	IPs          []string      `arg:"" name:"IP" help:"Addresses to ban."`
}

// Help explains what push does and how fail2ban calls it.
func (c *PushCmd) Help() string {
	return `push queues each address for every peer in the inventory but this host (see
--self) and returns as soon as
the queue is on disk (one write and one fsync): fail2ban runs every action
under one global lock, so push never waits for a peer. If no sender is
running, push starts one in the background (its own session, no inherited
stdio); it delivers the queue to every peer over SSH, in batches, and keeps
its connections open for a few seconds for the next bans.

Addresses are checked as receivers check them: loopback, private, link-local,
multicast and other special ranges are refused (exit 65); the others are
still queued.

fail2ban's action (contrib/fail2ban/action.d/banpush.conf) runs:
  banpush push --jail <name> --time <time> --bantime <bantime> -- <ip>

By hand, to see each peer's answer:
  banpush push --wait 203.0.113.7
With --wait, the report says per peer how many bans it refused and why (its
policy: a private address, an --ignore range, ...), and the exit status is
65 when any peer refused one, 3 when any peer failed. On a terminal, each
retry of an unreachable peer is shown as it happens.`
}

// Run queues the bans, then starts a sender or delivers in the foreground.
func (c *PushCmd) Run(env *Env, g *Globals) error {
	recs, refused := c.records(env)
	if len(recs) > 0 {
		s, err := spool.Open(g.Spool, spool.Options{})
		if err != nil {
			return withHint(err, exitFailure, "banpush needs a writable spool directory (--spool, BANPUSH_SPOOL); run it as root under fail2ban")
		}
		ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
		err = s.Append(ctx, env.Now(), recs...)
		cancel()
		if err != nil {
			return withHint(err, exitFailure, "the ban was not queued; check the spool directory (--spool, BANPUSH_SPOOL)")
		}
		if c.Wait {
			return deliverNow(env, g, s, deliverOpts{flags: c.DeliveryFlags, timeout: c.Timeout, json: c.JSON, refused: refused, peerRefusals: true})
		}
		if _, err := os.Stat(g.Inventory); err != nil {
			printWarning(env.Stderr, "queued, but the inventory %s cannot be read: nothing is delivered until it can", g.Inventory)
			printHint(env.Stderr, "add peers with 'banpush peers add NAME --host HOST', or set --inventory (BANPUSH_INVENTORY)")
		}
		kick := senderCommand(g, c.DeliveryFlags)
		if err := sender.Kick(s, kick); err != nil {
			printWarning(env.Stderr, "queued, but could not start a sender: %v", err)
			printHint(env.Stderr, "'banpush flush' (or the banpush-flush.timer) delivers the queue")
		}
	}
	if refused > 0 {
		return silentExit(exitData)
	}
	return nil
}

// records validates the arguments into records. A refused address is
// reported and counted; a bad --jail, --time or --bantime is dropped with a
// warning, since the ban itself matters more than its label.
func (c *PushCmd) records(env *Env) (recs []record.Record, refused int) {
	var base record.Record
	var err error
	if c.Jail != "" {
		if record.ValidName(c.Jail) {
			base.Jail = c.Jail
		} else {
			printWarning(env.Stderr, "--jail: not a safe name (1 to 64 of [A-Za-z0-9._-]); sent without it")
		}
	}
	// A bad --time or --bantime is dropped the same way: without it the
	// ban is kept for --max-age and the peers' own bantime applies.
	if base.Time, err = parseSeconds(c.Time, 1, record.MaxTime); err != nil {
		printWarning(env.Stderr, "--time: %v; sent without it", err)
	}
	if base.BanTime, err = parseSeconds(c.BanTime, record.Permanent, record.MaxBanTime); err != nil {
		printWarning(env.Stderr, "--bantime: %v; sent without it", err)
	}
	addrs, refused := checkAddrs(env, c.IPs, c.AllowPrivate)
	for _, a := range addrs {
		r := base
		r.Addr = a
		recs = append(recs, r)
	}
	return recs, refused
}

// parseSeconds parses a whole or fractional number of seconds as fail2ban
// writes its tags; "" and 0 mean "not given". The fraction is dropped, and a
// negative bantime is Permanent.
func parseSeconds(s string, lo, hi int64) (int64, error) {
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, errors.New("not a number of seconds")
	}
	if f < float64(lo) || f > float64(hi) {
		return 0, fmt.Errorf("out of range (%d to %d)", lo, hi)
	}
	n := int64(f)
	if n < 0 {
		n = record.Permanent
	}
	return n, nil
}
