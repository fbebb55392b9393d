package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/status"

	"github.com/banpush/banpush/sshpush/spool"
)

// StatusCmd shows the queue and the last delivery results per peer.
type StatusCmd struct {
	JSON        bool     `name:"json" help:"Print as JSON."`
	Prometheus  bool     `help:"Print metrics in Prometheus's text format, for node_exporter's textfile collector."`
	ReceivedLog []string `name:"received-log" help:"With --prometheus: a log this host receives bans into, whose state file holds each pushing peer's counters; repeat for several (missing ones are skipped)." default:"/var/log/banpush/received.log" type:"path" placeholder:"PATH"`
	Output      string   `help:"Write to this file, replaced atomically (mode 0644), instead of stdout." type:"path" placeholder:"FILE"`
	// FirewallState is banpush firewall's --state: where it exists, the
	// fast path's metrics are written too.
	FirewallState string `name:"firewall-state" help:"The cursor of 'banpush firewall' (its --state): where its directory exists, the fast path's state and kernel set are shown too (with --prometheus, as metrics)." default:"${firewall_state}" type:"path" placeholder:"PATH"`
}

// Help explains the columns.
func (c *StatusCmd) Help() string {
	return `status reads the spool and shows, for each peer of the inventory: how many bans
are queued for it and how old the oldest is, when a batch last succeeded, the
last failure (its class and message), and how many bans it delivered, refused
and dropped (expired before delivery), how many unbans it acknowledged, and
how many bans were cancelled by a later unban, and how many failure reports
('banpush report-failures') it counted. It also says whether a sender is
running. It contacts no peer: 'banpush peers check' does. The table fits 100
columns: the counts that are zero for every peer are left out, and the last
failure comes last, its message cut to fit; --json has every field, and the
messages whole.
Where 'banpush firewall' keeps its state (--firewall-state), it says
whether that runs, its bans in force, and how the kernel set compares.

--prometheus prints the same as metrics (banpush_peer_queued,
banpush_peer_oldest_queued_age_seconds,
banpush_peer_last_success_timestamp_seconds,
banpush_peer_last_failure_timestamp_seconds{class},
banpush_peer_delivered_total, banpush_peer_refused_total,
banpush_peer_dropped_total, banpush_peer_unbanned_total,
banpush_peer_cancelled_total, banpush_peer_failure_reports_total,
banpush_sender_running), and, for each --received-log, the counters of
every peer pushing to this host (banpush_receiver_accepted_total,
banpush_receiver_refused_total, banpush_receiver_rate_limited_total, and
for fleet detection banpush_receiver_failures_total and
banpush_receiver_fleet_bans_total), and, where 'banpush firewall' keeps
its state (--firewall-state), the kernel set's (banpush_firewall_running,
banpush_firewall_set_present, banpush_firewall_set_members,
banpush_firewall_state_bans, banpush_firewall_drift{kind}). On a host with no inventory only the
receiver's metrics are printed. contrib/systemd/banpush-metrics.timer writes
them every minute for node_exporter:

  banpush status --prometheus --output /var/lib/prometheus/node-exporter/banpush.prom`
}

// Run prints the status.
func (c *StatusCmd) Run(env *Env, g *Globals) error {
	if c.Prometheus && c.JSON {
		return errorf(exitUsage, "give one of them", "--json and --prometheus do not go together")
	}
	var rep *status.Report
	if _, err := os.Stat(g.Inventory); !c.Prometheus || !errors.Is(err, os.ErrNotExist) {
		r, err := c.report(env, g)
		if err != nil {
			return err
		}
		rep = &r
	}
	out := env.Stdout
	var buf bytes.Buffer
	if c.Output != "" {
		out = &buf
	}
	var err error
	switch {
	case c.Prometheus:
		err = c.writeMetrics(env, out, rep)
	case c.JSON:
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	default:
		err = status.WriteTable(out, *rep, env.Now())
	}
	if err != nil || c.Output == "" {
		return err
	}
	if err := fsutil.WriteAtomic(c.Output, buf.Bytes(), 0o644); err != nil {
		return withHint(err, exitFailure, "--output needs a directory banpush can write to")
	}
	return nil
}

// report reads the inventory and the spool.
func (c *StatusCmd) report(env *Env, g *Globals) (status.Report, error) {
	ro, err := loadRoster(env, g)
	if err != nil {
		return status.Report{}, err
	}
	// A read-only look makes nothing: no spool yet means nothing queued.
	s, err := spool.OpenExisting(g.Spool, spool.Options{})
	if err == nil && s == nil {
		return status.NoSpool(g.Spool, ro), nil
	}
	if notRoot(err) {
		return status.Report{}, withHint(err, exitFailure, notRootHint)
	}
	if err != nil {
		return status.Report{}, withHint(err, exitFailure, "check --spool (BANPUSH_SPOOL)")
	}
	rep, warnings, err := status.Read(s, ro, env.Now())
	for _, w := range warnings {
		printWarning(env.Stderr, "%v", w)
	}
	if _, serr := os.Stat(filepath.Dir(c.FirewallState)); serr == nil && err == nil && !c.Prometheus {
		fw, ferr := inspectFirewall(c.FirewallState, env.Now())
		if ferr != nil {
			printWarning(env.Stderr, "the fast path's state is left out: %v", ferr)
		} else {
			rep.Firewall = &fw
		}
	}
	return rep, err
}

// writeMetrics writes the sender's metrics (rep nil: this host does not
// push) and the receiver's.
func (c *StatusCmd) writeMetrics(env *Env, w io.Writer, rep *status.Report) error {
	received, warnings := status.ReadReceived(c.ReceivedLog)
	for _, w := range warnings {
		printWarning(env.Stderr, "%v", w)
	}
	if err := status.WriteMetrics(w, rep, received); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Dir(c.FirewallState)); err != nil {
		return nil // no fast path here
	}
	fw, err := inspectFirewall(c.FirewallState, env.Now())
	if err != nil {
		printWarning(env.Stderr, "the fast path's metrics are left out: %v", err)
		return nil
	}
	return status.WriteFirewallMetrics(w, fw)
}

// inspectFirewall compares the fast path's state at state with the
// kernel set of this host's network namespace.
func inspectFirewall(state string, now time.Time) (firewall.Status, error) {
	set, err := nftset.Open(0)
	if err != nil {
		return firewall.Status{}, err
	}
	defer set.Close()
	return firewall.Inspect(state, set, now)
}
