package main

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// UnbanCmd lifts bans here and on every peer.
type UnbanCmd struct {
	DeliveryFlags
	Jail         string        `help:"Unban here in this jail only (default: every jail)." placeholder:"NAME"`
	AllowPrivate bool          `help:"Accept private (RFC 1918, RFC 4193) and CGNAT addresses. Without it they are accepted where push accepts them: when a banpush action of the running fail2ban gives push --allow-private."`
	Wait         bool          `help:"Deliver the unbans now, in the foreground, and report per peer (exit 3 if any peer failed, 65 if any refused an unban)."`
	Timeout      time.Duration `help:"With --wait: how long to keep trying." default:"30s"`
	JSON         bool          `name:"json" help:"With --wait: print the report as JSON."`
	IPs          []string      `arg:"" name:"IP" help:"Addresses to unban."`

	FirewallState string `name:"firewall-state" help:"The cursor of 'banpush firewall' (its --state): where the fast path runs, it lifts its bans of the addresses too." default:"${firewall_state}" type:"path" placeholder:"PATH"`
}

// Help explains what unban does, here and on the peers.
func (c *UnbanCmd) Help() string {
	return `unban takes a wrong ban back everywhere: a false positive (an office address,
a monitoring probe, a customer's NAT) that banpush has already shared.

For each address it:
  1. unbans it in the local fail2ban (every jail, or --jail), through
     fail2ban-client; if fail2ban is not running it says so and goes on;
     where the fast path runs ('banpush firewall'), lifts it from its
     kernel set too, at once, and from its state at its next read;
  2. cancels the bans of it still queued for peers: they are not delivered;
  3. queues an unban for every peer (but this host), delivered like bans: in
     order after the bans queued before it, retried, at least once.

Addresses are checked as push checks them: a private (or CGNAT) address is
taken only with --allow-private, or when a banpush action of the running
fail2ban gives push --allow-private (banpush[pushargs="--allow-private"] in
the jail), which unban reads there as push gets it; otherwise it is refused
(exit 65) with a hint.

A peer applies an unban only if its authorized_keys line for this host's key
has --allow-unban ('banpush authorize --allow-unban'); it writes it to its
log, and its 'banpush apply-unbans' (a systemd path unit) lifts the ban in
its receiving jails. For --unban-window (10 minutes by default) after that,
the peer refuses bans of the address as stale, so that a ban still in
flight does not put it straight back. A peer whose banpush predates unbans
reports receiver-too-old; the unban stays queued until it is upgraded
(or --max-age passes: then it is dropped, as an old ban is).

The address must not be detected again here: add it to ignoreip (and to
the peers' ignoreip) if it should never be banned.

Examples:
  banpush unban 203.0.113.7
  banpush unban --wait 203.0.113.7 198.51.100.20
  banpush unban --jail sshd 203.0.113.7`
}

// Run unbans locally, queues the unbans, then delivers or kicks a sender.
func (c *UnbanCmd) Run(env *Env, g *Globals) error {
	if c.Jail != "" && (!record.ValidName(c.Jail) || !f2b.ValidJail(c.Jail)) {
		return errorf(exitUsage, "'fail2ban-client status' lists the jails", "--jail %s: not a jail name", safeArg(c.Jail))
	}
	var items []spool.Item
	now := env.Now()
	allowPrivate, hint := c.allowPrivate(env, g)
	addrs, refused := checkAddrs(env, c.IPs, allowPrivate)
	for _, a := range addrs {
		items = append(items, spool.Item{Kind: spool.Unban, Record: record.Record{Addr: a, Jail: c.Jail, Time: now.Unix()}})
	}
	if refused > 0 && hint != "" {
		printHint(env.Stderr, hint)
	}
	if len(items) == 0 {
		return silentExit(exitData)
	}
	c.unbanHere(env, g, items)
	c.liftHere(env, items)

	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return withHint(err, exitFailure, "banpush needs a writable spool directory (--spool, BANPUSH_SPOOL); run it as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	err = s.AppendItems(ctx, now, items...)
	cancel()
	switch {
	case errors.Is(err, spool.ErrNotCancelled):
		// The unbans are queued: deliver them all the same, after the
		// bans that could not be cancelled.
		printWarning(env.Stderr, "%v", err)
		printNote(env.Stderr, "unban of %s queued for every peer, after its bans still queued", addrList(items))
	case err != nil:
		return withHint(err, exitFailure, "the unbans were not queued; check the spool directory "+g.Spool)
	default:
		printNote(env.Stderr, "unban of %s queued for every peer; its bans still queued are cancelled", addrList(items))
	}
	if c.Wait {
		return deliverNow(env, g, s, deliverOpts{flags: c.DeliveryFlags, timeout: c.Timeout, json: c.JSON, refused: refused, peerRefusals: true})
	}
	if err := sender.Kick(s, senderCommand(g, c.DeliveryFlags)); err != nil {
		printWarning(env.Stderr, "queued, but could not start a sender: %v", err)
		printHint(env.Stderr, "'banpush flush' (or the banpush-flush.timer) delivers the queue")
	}
	if refused > 0 {
		return silentExit(exitData)
	}
	return nil
}

// allowPrivate says whether unban takes private addresses, as push does:
// with --allow-private, or when a push action of the running fail2ban
// gives push --allow-private (push learns it from those arguments). The
// running fail2ban is asked only for an address that is refused for being
// private alone. hint is what to say if such an address is refused.
func (c *UnbanCmd) allowPrivate(env *Env, g *Globals) (allow bool, hint string) {
	if c.AllowPrivate || !slices.ContainsFunc(c.IPs, privateOnly) {
		return c.AllowPrivate, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	p, err := runningPushPolicy(ctx, &f2b.Client{Socket: g.Fail2banSocket})
	jail, allowed := p.allowPrivate()
	switch {
	case err != nil:
		return false, "whether push takes private addresses is not known here: the running fail2ban could not be asked for its banpush action (" +
			oneLine(err.Error()) + "); if the fleet allows them, give --allow-private"
	case allowed:
		printNote(env.Stderr, "private addresses taken, as push takes them: the banpush action of jail %s gives it --allow-private", jail)
		return true, ""
	case p.Actions == 0:
		return false, "no running jail has the banpush action, whose arguments say whether push takes private addresses; if the fleet allows them, give --allow-private"
	}
	return false, "push refuses private addresses too: no banpush action of the running jails gives it --allow-private (banpush[pushargs=\"--allow-private\"] in the jail, where the fleet allows them; the peers' lines need it too); to unban one all the same, give --allow-private"
}

// privateOnly reports whether arg is an address refused for being private
// (or CGNAT) alone.
func privateOnly(arg string) bool {
	a, err := record.ParseAddr(arg)
	strict, private := record.Policy{}, record.Policy{AllowPrivate: true}
	return err == nil && strict.Check(a) != nil && private.Check(a) == nil
}

// unbanHere lifts the bans in the local fail2ban and says what it did. A
// fail2ban that is not running is reported and passed over: the peers'
// bans matter as much.
func (c *UnbanCmd) unbanHere(env *Env, g *Globals, items []spool.Item) {
	client := &f2b.Client{Socket: g.Fail2banSocket}
	where := "any jail"
	if c.Jail != "" {
		where = "jail " + c.Jail
	}
	for _, it := range items {
		was, err := client.Unban(context.Background(), c.Jail, it.Record.Addr)
		switch {
		case errors.Is(err, f2b.ErrNotRunning):
			printWarning(env.Stderr, "fail2ban is not running here (%s): nothing unbanned locally; the peers' unbans are still queued", g.Fail2banSocket)
			return
		case errors.Is(err, f2b.ErrNoJail):
			printWarning(env.Stderr, "the running fail2ban has no jail %s: nothing unbanned locally", c.Jail)
			return
		case err != nil:
			printWarning(env.Stderr, "%s: not unbanned here: %v", it.Record.Addr, err)
		case was:
			printNote(env.Stderr, "%s: unbanned here (%s)", it.Record.Addr, where)
		default:
			printNote(env.Stderr, "%s: not banned here (%s)", it.Record.Addr, where)
		}
	}
}

// liftHere lifts the addresses from the fast path's kernel set, where
// 'banpush firewall' ever ran: a request its engine applies to its state
// (and its kernel set) at its next read, or its next start; and, so that
// it holds at once, a delete from the kernel set now.
func (c *UnbanCmd) liftHere(env *Env, items []spool.Item) {
	if c.Jail != "" && !firewall.IsReceiving(c.Jail) {
		return // the fast path bans for the receiving jails only
	}
	addrs := make([]netip.Addr, len(items))
	for i, it := range items {
		addrs[i] = it.Record.Addr
	}
	err := firewall.RequestLift(c.FirewallState, addrs)
	switch {
	case errors.Is(err, firewall.ErrNoFastPath):
		return
	case err != nil:
		printWarning(env.Stderr, "the fast path (banpush firewall): not lifted: %v", err)
		return
	}
	set, err := nftset.Open(0)
	if err == nil {
		defer set.Close()
		err = set.Delete(addrs)
	}
	if err != nil && !errors.Is(err, nftset.ErrNoTable) {
		printWarning(env.Stderr, "the fast path (banpush firewall): %v; lifted at its next read", err)
		return
	}
	printNote(env.Stderr, "%s: lifted from the fast path (banpush firewall)", addrList(items))
}

// addrList names the items' addresses in a message.
func addrList(items []spool.Item) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.Record.Addr.String()
	}
	return strings.Join(s, ", ")
}
