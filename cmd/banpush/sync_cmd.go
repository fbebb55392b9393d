package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// syncTimeout bounds the questions sync asks the local fail2ban.
const syncTimeout = time.Minute

// SyncCmd queues the bans fail2ban holds now, for a new or returning peer.
type SyncCmd struct {
	DeliveryFlags
	Jails        []string `name:"jail" help:"Read this running jail (repeatable; default: every running jail that carries the banpush action)." placeholder:"NAME"`
	DryRun       bool     `name:"dry-run" help:"List the bans that would be queued; queue nothing."`
	JSON         bool     `name:"json" help:"Print the report as JSON."`
	AllowPrivate bool     `help:"Queue private (RFC 1918, RFC 4193) and CGNAT addresses too; peers refuse them unless they allow them. Without it, a jail's private addresses are queued where its banpush action gives push --allow-private, as push queued them."`
	Peers        []string `arg:"" optional:"" name:"PEER" help:"Only for these peers (default: every peer but this host)."`
}

// Help explains what sync sends and when to run it.
func (c *SyncCmd) Help() string {
	return `sync queues the bans the local fail2ban holds right now, for the peers named
(default: every peer but this host), and starts a sender, as push does. Run
it as root after adding a peer, or when a peer comes back after longer than
--max-age: push only shares bans as they happen, so a new host would never
get the long and permanent bans already in force here.

    banpush peers add web4 --host 192.0.2.14
    banpush sync web4
    banpush sync --dry-run          # what would be queued, for every peer

It reads the jails that carry the banpush action (or those named with
--jail) through 'fail2ban-client get JAIL banip --with-time', never from log
files. Each ban keeps its original start time and bantime, so a peer sees
how long it has left; bans whose time has run out are not sent, permanent
ones are. An address banned in several jails is sent once, with the ban
that ends last. The receiving peer's own jail bans for its own bantime
(docs/operations.md#catching-up-a-new-or-returning-host-banpush-sync).

Prints one line per peer with the number of bans queued for it (--json: an
object with the bans, the peers and the counts). Exit status 69 if fail2ban
does not answer (nothing is queued), 78 for an unknown peer or jail, or no
jail that carries the banpush action.`
}

// syncBan is one ban of the report.
type syncBan struct {
	Addr      string `json:"addr"`
	Jail      string `json:"jail"`
	Time      int64  `json:"time"`
	BanTime   int64  `json:"bantime"`
	Remaining int64  `json:"remaining"` // seconds; -1 for a permanent ban
}

// syncPeer is one peer of the report.
type syncPeer struct {
	Peer   string `json:"peer"`
	Queued int    `json:"queued"`
}

// syncReport is what sync prints with --json. Its keys are stable.
type syncReport struct {
	DryRun     bool       `json:"dry_run"`
	Jails      []string   `json:"jails"`
	Peers      []syncPeer `json:"peers"`
	Bans       []syncBan  `json:"bans"`
	Expired    int        `json:"expired"`
	Duplicates int        `json:"duplicates"`
	Refused    int        `json:"refused"`
}

// Run reads fail2ban, queues and reports.
func (c *SyncCmd) Run(env *Env, g *Globals) error {
	for _, j := range c.Jails {
		if !f2b.ValidJail(j) {
			return errorf(exitUsage, "'fail2ban-client status' lists the running jails", "--jail: not a jail name")
		}
	}
	peers, err := c.peers(env, g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	client := &f2b.Client{Socket: g.Fail2banSocket}
	jails, private, err := c.jails(ctx, client, g)
	if err != nil {
		return err
	}
	var all []f2b.Ban
	for _, j := range jails {
		// Streamed: a jail may hold more bans than a reply is read whole.
		err := client.EachBan(ctx, j, func(b f2b.Ban) error {
			all = append(all, b)
			return nil
		})
		if errors.Is(err, f2b.ErrNoJail) {
			return errorf(exitConfig, "'fail2ban-client status' lists the running jails", "fail2ban runs no jail named %s: nothing queued", j)
		}
		if err != nil {
			return fail2banError(err, g)
		}
	}
	rep, recs := c.report(env, all, jails, private, peers)
	if !c.DryRun && len(recs) > 0 {
		if err := c.queue(env, g, recs); err != nil {
			return err
		}
	}
	return c.print(env, rep)
}

// peers are the peers to sync: those named, or every peer but this host.
func (c *SyncCmd) peers(env *Env, g *Globals) ([]string, error) {
	d, err := loadRoster(env, g, c.Peers...)
	if err != nil {
		return nil, err
	}
	if err := d.NotSelf(c.Peers); err != nil {
		return nil, rosterError(err)
	}
	for _, w := range d.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	peers := c.Peers
	if len(peers) == 0 {
		peers = d.Live
	}
	if len(peers) == 0 {
		return nil, errorf(exitConfig, "add a peer with 'banpush peers add NAME --host HOST'", "no peer to sync: %s names no peer but this host", g.Inventory)
	}
	for _, p := range peers {
		if err := d.Bad[p]; err != nil {
			printWarning(env.Stderr, "peer %s cannot be used yet (%v); its bans are queued all the same", p, err)
		}
	}
	return peers, nil
}

// jails are the jails whose bans sync queues (--jail, or every running
// jail with the banpush action), and, for each, whether its push takes
// private addresses (its action gives push --allow-private): sync queues
// what push would have.
func (c *SyncCmd) jails(ctx context.Context, client *f2b.Client, g *Globals) (jails []string, private map[string]bool, err error) {
	jails = c.Jails
	if len(jails) == 0 {
		if jails, err = client.PushingJails(ctx); err != nil {
			return nil, nil, fail2banError(err, g)
		}
		if len(jails) == 0 {
			return nil, nil, errorf(exitConfig, "add the banpush action to the jails you share, or name jails with --jail",
				"no running jail carries the banpush action")
		}
	}
	if c.AllowPrivate {
		return jails, map[string]bool{}, nil
	}
	// Which push takes private addresses, from the actions' actionban;
	// without an answer, none does (--allow-private still can).
	p, _ := runningPushPolicy(ctx, client)
	return jails, p.Private, nil
}

// report makes the records to queue from fail2ban's bans, and the report
// of what sync does.
func (c *SyncCmd) report(env *Env, all []f2b.Ban, jails []string, private map[string]bool, peers []string) (syncReport, []record.Record) {
	now := env.Now()
	active, expired, dups := f2b.Active(all, now.Unix())
	rep := syncReport{DryRun: c.DryRun, Jails: jails, Peers: []syncPeer{}, Bans: []syncBan{}, Expired: expired, Duplicates: dups}
	var recs []record.Record
	var firstRefusal error
	for _, b := range active {
		pol := record.Policy{AllowPrivate: c.AllowPrivate || private[b.Jail]}
		if err := pol.Check(b.Addr); err != nil {
			if firstRefusal == nil {
				firstRefusal = fmt.Errorf("%s: %w", b.Addr, err)
			}
			rep.Refused++
			continue
		}
		r := b.Record()
		recs = append(recs, r)
		remaining := int64(record.Permanent)
		if end, ok := b.End(); ok {
			remaining = end - now.Unix()
		}
		rep.Bans = append(rep.Bans, syncBan{Addr: b.Addr.String(), Jail: b.Jail, Time: b.Time, BanTime: r.BanTime, Remaining: remaining})
	}
	for _, p := range peers {
		rep.Peers = append(rep.Peers, syncPeer{Peer: p, Queued: len(recs)})
	}
	if rep.Refused > 0 {
		printWarning(env.Stderr, "%s not queued: the first, %v (--allow-private queues private addresses; push takes them where a jail's banpush action gives it --allow-private)", plural(rep.Refused, "ban"), firstRefusal)
	}
	return rep, recs
}

// queue appends the records, for the peers named (one item per ban and
// peer) or for every peer, and starts a sender as push does.
func (c *SyncCmd) queue(env *Env, g *Globals, recs []record.Record) error {
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return withHint(err, exitFailure, "banpush needs a writable spool directory (--spool, BANPUSH_SPOOL); run it as root")
	}
	var items []spool.Item
	for _, r := range recs {
		if len(c.Peers) == 0 {
			items = append(items, spool.Item{Kind: spool.Ban, Record: r})
			continue
		}
		for _, p := range c.Peers {
			items = append(items, spool.Item{Kind: spool.Ban, To: p, Record: r})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	err = s.AppendItems(ctx, env.Now(), items...)
	cancel()
	if err != nil {
		return withHint(err, exitFailure, "nothing was queued; check the spool directory "+g.Spool)
	}
	if err := sender.Kick(s, senderCommand(g, c.DeliveryFlags)); err != nil {
		printWarning(env.Stderr, "queued, but could not start a sender: %v", err)
		printHint(env.Stderr, "'banpush flush' (or the banpush-flush.timer) delivers the queue")
	}
	return nil
}

// print writes the report: the bans (with --dry-run) or the count per
// peer, or all of it as JSON.
func (c *SyncCmd) print(env *Env, rep syncReport) error {
	if c.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	if c.DryRun {
		fmt.Fprintln(tw, "ADDRESS\tJAIL\tSTARTED\tBANTIME\tREMAINING")
		for _, b := range rep.Bans {
			remaining := "permanent"
			if b.BanTime != record.Permanent {
				remaining = (time.Duration(b.Remaining) * time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.Addr, b.Jail, time.Unix(b.Time, 0).UTC().Format(time.RFC3339), b.BanTime, remaining)
		}
	} else {
		fmt.Fprintln(tw, "PEER\tQUEUED")
		for _, p := range rep.Peers {
			fmt.Fprintf(tw, "%s\t%d\n", p.Peer, p.Queued)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var names []string
	for _, p := range rep.Peers {
		names = append(names, p.Peer)
	}
	jails := "jail "
	if len(rep.Jails) > 1 {
		jails = "jails "
	}
	summary := fmt.Sprintf("%s active in %s%s", plural(len(rep.Bans), "ban"), jails, strings.Join(rep.Jails, ", "))
	if rep.Expired > 0 || rep.Duplicates > 0 {
		summary += fmt.Sprintf(" (left out: %d ended, %d banned in another jail too)", rep.Expired, rep.Duplicates)
	}
	if c.DryRun {
		printNote(env.Stderr, "%s; dry run: nothing queued for %s", summary, strings.Join(names, ", "))
	} else if len(rep.Bans) > 0 {
		printNote(env.Stderr, "%s; queued for %s; a sender delivers them now ('banpush status' shows the queues)", summary, strings.Join(names, ", "))
	} else {
		printNote(env.Stderr, "%s; nothing to queue", summary)
	}
	return nil
}

// fail2banError turns an error from the local fail2ban into one with a
// hint and sync's exit status.
func fail2banError(err error, g *Globals) error {
	switch {
	case errors.Is(err, f2b.ErrNotRunning):
		return errorf(exitUnavailable, "start fail2ban ('systemctl start fail2ban'), or point --fail2ban-socket (BANPUSH_FAIL2BAN_SOCKET) at its socket",
			"no fail2ban server answers at %s: nothing queued", g.Fail2banSocket)
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return errorf(exitUnavailable, "apt-get install fail2ban (or put fail2ban-client on PATH)", "fail2ban-client is not installed: nothing queued")
	case errors.Is(err, f2b.ErrTooManyBans):
		return withHint(err, exitFailure, "name fewer jails with --jail; nothing was queued")
	}
	return withHint(err, exitFailure, "nothing was queued; 'banpush doctor' checks fail2ban")
}
