package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/receive"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// StatusCmd shows the queue and the last delivery results per peer.
type StatusCmd struct {
	JSON        bool     `name:"json" help:"Print as JSON."`
	Prometheus  bool     `help:"Print metrics in Prometheus's text format, for node_exporter's textfile collector."`
	ReceivedLog []string `name:"received-log" help:"With --prometheus: a log this host receives bans into, whose state file holds each pushing peer's counters; repeat for several (missing ones are skipped)." default:"/var/log/banpush/received.log" type:"path" placeholder:"PATH"`
	Output      string   `help:"Write to this file, replaced atomically (mode 0644), instead of stdout." type:"path" placeholder:"FILE"`
}

// Help explains the columns.
func (c *StatusCmd) Help() string {
	return `status reads the spool and shows, for each peer of the inventory: how many bans
are queued for it and how old the oldest is, when a batch last succeeded, the
last failure (its class and message), and how many bans it delivered, refused
and dropped (expired before delivery). It also says whether a sender is
running. It contacts no peer: 'banpush peers check' does. The table cuts long
failure messages; --json has them whole.

--prometheus prints the same as metrics (banpush_peer_queued,
banpush_peer_oldest_queued_age_seconds,
banpush_peer_last_success_timestamp_seconds,
banpush_peer_last_failure_timestamp_seconds{class},
banpush_peer_delivered_total, banpush_peer_refused_total,
banpush_peer_dropped_total, banpush_sender_running), and, for each
--received-log, the counters of every peer pushing to this host
(banpush_receiver_accepted_total, banpush_receiver_refused_total,
banpush_receiver_rate_limited_total). On a host with no inventory only the
receiver's metrics are printed. contrib/systemd/banpush-metrics.timer writes
them every minute for node_exporter:

  banpush status --prometheus --output /var/lib/prometheus/node-exporter/banpush.prom`
}

type statusPeer struct {
	Peer               string     `json:"peer"`
	Queued             int        `json:"queued"`
	OldestAgeSeconds   float64    `json:"oldest_age_seconds"`
	LastSuccess        *time.Time `json:"last_success"`
	LastFailure        *time.Time `json:"last_failure"`
	LastFailureClass   string     `json:"last_failure_class"`
	LastFailureMessage string     `json:"last_failure_message"`
	Delivered          int64      `json:"delivered"`
	Refused            int64      `json:"refused"`
	Dropped            int64      `json:"dropped"`
	Unbanned           int64      `json:"unbanned"`
	Cancelled          int64      `json:"cancelled"`
}

type statusReport struct {
	SenderRunning bool         `json:"sender_running"`
	Spool         string       `json:"spool"`
	Self          []selfPeer   `json:"self"` // the peers that are this host, not sent to
	Peers         []statusPeer `json:"peers"`
}

// Run prints the status.
func (c *StatusCmd) Run(env *Env, g *Globals) error {
	if c.Prometheus && c.JSON {
		return errorf(exitUsage, "give one of them", "--json and --prometheus do not go together")
	}
	var rep *statusReport
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
		err = printStatus(out, *rep, env.Now())
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
func (c *StatusCmd) report(env *Env, g *Globals) (statusReport, error) {
	d, err := resolveDelivery(g, env, nil)
	if err != nil {
		return statusReport{}, err
	}
	s, err := spool.Open(g.Spool, spool.Options{})
	if notRoot(err) {
		return statusReport{}, withHint(err, exitFailure, notRootHint)
	}
	if err != nil {
		return statusReport{}, withHint(err, exitFailure, "check --spool (BANPUSH_SPOOL)")
	}
	rep := statusReport{Spool: s.Dir(), Self: d.self, Peers: []statusPeer{}}
	if rep.Self == nil {
		rep.Self = []selfPeer{}
	}
	if rep.SenderRunning, err = sender.Running(s); err != nil {
		return statusReport{}, err
	}
	now := env.Now()
	for _, name := range d.live {
		p := statusPeer{Peer: name}
		n, oldest, err := s.Pending(name)
		if err != nil {
			return statusReport{}, err
		}
		p.Queued = n
		if !oldest.IsZero() {
			p.OldestAgeSeconds = now.Sub(oldest).Round(time.Second).Seconds()
		}
		st, err := s.LoadState(name)
		if err != nil {
			printWarning(env.Stderr, "%v", err)
		}
		if !st.LastSuccess.IsZero() {
			p.LastSuccess = &st.LastSuccess
		}
		if !st.LastFailure.IsZero() {
			p.LastFailure = &st.LastFailure
			p.LastFailureClass = st.LastFailureClass
			p.LastFailureMessage = st.LastFailureMessage
		}
		p.Delivered, p.Refused, p.Dropped = st.Delivered, st.Refused, st.Dropped
		p.Unbanned, p.Cancelled = st.Unbanned, st.Cancelled
		rep.Peers = append(rep.Peers, p)
	}
	return rep, nil
}

// writeMetrics writes the sender's metrics (rep nil: this host does not
// push) and the receiver's.
func (c *StatusCmd) writeMetrics(env *Env, w io.Writer, rep *statusReport) error {
	var ms []*metric
	if rep != nil {
		ms = senderMetrics(*rep)
	}
	logs := map[string]map[string]receive.Counters{}
	for _, log := range c.ReceivedLog {
		if _, err := os.Stat(log); errors.Is(err, os.ErrNotExist) {
			continue
		}
		counters, err := receive.ReadCounters(log)
		if err != nil {
			printWarning(env.Stderr, "%v", err)
			continue
		}
		logs[log] = counters
	}
	return writeMetrics(w, append(ms, receiverMetrics(logs)...))
}

// maxDetail is how much of a failure message the table shows.
const maxDetail = 60

func printStatus(w io.Writer, rep statusReport, now time.Time) error {
	running := "not running"
	if rep.SenderRunning {
		running = "running"
	}
	fmt.Fprintf(w, "spool %s, sender %s\n", rep.Spool, running)
	for _, sp := range rep.Self {
		fmt.Fprintf(w, "self %s (%s): nothing is sent to it\n", sp.Name, sp.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// The unban columns appear once this host has sent unbans.
	unbans := slices.ContainsFunc(rep.Peers, func(p statusPeer) bool { return p.Unbanned > 0 || p.Cancelled > 0 })
	header := "PEER\tQUEUED\tOLDEST\tLAST SUCCESS\tLAST FAILURE\tDELIVERED\tREFUSED\tDROPPED"
	if unbans {
		header += "\tUNBANNED\tCANCELLED"
	}
	fmt.Fprintln(tw, header)
	for _, p := range rep.Peers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d", p.Peer, p.Queued, age(p.OldestAgeSeconds, p.Queued),
			ago(now, p.LastSuccess), failure(now, p), p.Delivered, p.Refused, p.Dropped)
		if unbans {
			fmt.Fprintf(tw, "\t%d\t%d", p.Unbanned, p.Cancelled)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func age(sec float64, n int) string {
	if n == 0 {
		return "-"
	}
	return (time.Duration(sec) * time.Second).String()
}

func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func failure(now time.Time, p statusPeer) string {
	if p.LastFailure == nil {
		return "-"
	}
	if p.LastSuccess != nil && p.LastSuccess.After(*p.LastFailure) {
		return p.LastFailureClass + " (" + ago(now, p.LastFailure) + ", since recovered)"
	}
	return p.LastFailureClass + " " + ago(now, p.LastFailure) + ": " + cut(p.LastFailureMessage, maxDetail)
}

// cut shortens s to n bytes, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
