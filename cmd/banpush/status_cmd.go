package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
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
running. It contacts no peer: 'banpush peers check' does. The table fits 100
columns: the counts that are zero for every peer are left out, and the last
failure comes last, its message cut to fit; --json has every field, and the
messages whole.

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

// tableWidth is the width the status table fits in: the failure message,
// its last column, is cut to fit; --json has it whole.
const tableWidth = 100

// minDetail is the least of a failure the table shows, however wide the
// columns before it (long peer names).
const minDetail = 24

// printStatus prints the table: the counts that are zero for every peer
// are left out (refused, dropped, unbanned, cancelled), times are short,
// and the last failure comes last, cut to fit tableWidth.
func printStatus(w io.Writer, rep statusReport, now time.Time) error {
	running := "not running"
	if rep.SenderRunning {
		running = "running"
	}
	fmt.Fprintf(w, "spool %s, sender %s\n", rep.Spool, running)
	for _, sp := range rep.Self {
		fmt.Fprintf(w, "self %s (%s): nothing is sent to it\n", sp.Name, sp.Reason)
	}
	type column struct {
		head     string
		cell     func(p statusPeer) string
		optional bool // left out when zero for every peer
		zero     func(p statusPeer) bool
	}
	count := func(head string, n func(p statusPeer) int64) column {
		return column{head: head, cell: func(p statusPeer) string { return strconv.FormatInt(n(p), 10) },
			optional: true, zero: func(p statusPeer) bool { return n(p) == 0 }}
	}
	all := []column{
		{head: "PEER", cell: func(p statusPeer) string { return p.Peer }},
		{head: "QUEUED", cell: func(p statusPeer) string { return strconv.Itoa(p.Queued) }},
		{head: "OLDEST", cell: func(p statusPeer) string { return age(p.OldestAgeSeconds, p.Queued) }},
		{head: "LAST OK", cell: func(p statusPeer) string { return ago(now, p.LastSuccess) }},
		{head: "DELIVERED", cell: func(p statusPeer) string { return strconv.FormatInt(p.Delivered, 10) }},
		count("REFUSED", func(p statusPeer) int64 { return p.Refused }),
		count("DROPPED", func(p statusPeer) int64 { return p.Dropped }),
		count("UNBANNED", func(p statusPeer) int64 { return p.Unbanned }),
		count("CANCELLED", func(p statusPeer) int64 { return p.Cancelled }),
	}
	var cols []column
	for _, c := range all {
		if !c.optional || slices.ContainsFunc(rep.Peers, func(p statusPeer) bool { return !c.zero(p) }) {
			cols = append(cols, c)
		}
	}
	rows := [][]string{make([]string, len(cols))}
	for i, c := range cols {
		rows[0][i] = c.head
	}
	for _, p := range rep.Peers {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = c.cell(p)
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(cols))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	before := 0 // the width of the columns before the failure's
	for _, wd := range widths {
		before += wd + 2
	}
	room := max(tableWidth-before, minDetail)
	for r, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-len(cell)+2))
		}
		last := "LAST FAILURE"
		if r > 0 {
			last = failure(now, rep.Peers[r-1], room)
		}
		b.WriteString(last)
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func age(sec float64, n int) string {
	if n == 0 {
		return "-"
	}
	return short(time.Duration(sec) * time.Second)
}

func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return short(now.Sub(*t)) + " ago"
}

// short writes a duration in its two largest units, rounded down: 42s,
// 5m3s, 2h7m, 3d4h.
func short(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	units := []struct {
		n    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	i := 0
	for i < len(units)-1 && d < units[i].n {
		i++
	}
	s := strconv.FormatInt(int64(d/units[i].n), 10) + units[i].name
	if i+1 < len(units) {
		if r := d % units[i].n / units[i+1].n; r > 0 {
			s += strconv.FormatInt(int64(r), 10) + units[i+1].name
		}
	}
	return s
}

// failure is a peer's last failure in at most n bytes: its class, when,
// and its message (cut), or whether it has recovered since.
func failure(now time.Time, p statusPeer, n int) string {
	if p.LastFailure == nil {
		return "-"
	}
	if p.LastSuccess != nil && p.LastSuccess.After(*p.LastFailure) {
		return cut(p.LastFailureClass+" "+ago(now, p.LastFailure)+", since recovered", n)
	}
	return cut(p.LastFailureClass+" "+ago(now, p.LastFailure)+": "+p.LastFailureMessage, n)
}

// cut shortens s to n bytes, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
