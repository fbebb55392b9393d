package status

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/banpush/banpush/sshpush/receive"
)

// Metrics in Prometheus's text exposition format, as node_exporter's
// textfile collector reads them (status --prometheus). The names are part
// of banpush's interface: alert rules refer to them.

// metric is one family: its name, type, help and samples.
type metric struct {
	name, typ, help string
	samples         []sample
}

type sample struct {
	labels [][2]string
	value  float64
}

func (m *metric) add(v float64, labels ...string) {
	s := sample{value: v}
	for i := 0; i+1 < len(labels); i += 2 {
		s.labels = append(s.labels, [2]string{labels[i], labels[i+1]})
	}
	m.samples = append(m.samples, s)
}

// writeMetrics writes the families, each with its HELP and TYPE lines,
// leaving out those without samples.
func writeMetrics(w io.Writer, ms []*metric) error {
	var b strings.Builder
	for _, m := range ms {
		if len(m.samples) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, escapeHelp(m.help), m.name, m.typ)
		for _, s := range m.samples {
			b.WriteString(m.name)
			if len(s.labels) > 0 {
				b.WriteByte('{')
				for i, l := range s.labels {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(l[0] + `="` + escapeLabel(l[1]) + `"`)
				}
				b.WriteByte('}')
			}
			b.WriteString(" " + strconv.FormatFloat(s.value, 'g', -1, 64) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// senderMetrics are the pushing side's families, from status's report.
func senderMetrics(rep Report) []*metric {
	running := &metric{name: "banpush_sender_running", typ: "gauge", help: "1 if a banpush sender is running for the spool."}
	queued := &metric{name: "banpush_peer_queued", typ: "gauge", help: "Bans queued for the peer and not acknowledged yet."}
	oldest := &metric{name: "banpush_peer_oldest_queued_age_seconds", typ: "gauge", help: "Age of the oldest ban queued for the peer; 0 when none is."}
	success := &metric{name: "banpush_peer_last_success_timestamp_seconds", typ: "gauge", help: "When the peer last acknowledged a batch (Unix time); absent if never."}
	failure := &metric{name: "banpush_peer_last_failure_timestamp_seconds", typ: "gauge", help: "When delivery to the peer last failed (Unix time), by failure class; absent if never."}
	delivered := &metric{name: "banpush_peer_delivered_total", typ: "counter", help: "Bans the peer acknowledged and wrote to its log."}
	refused := &metric{name: "banpush_peer_refused_total", typ: "counter", help: "Bans the peer refused (its policy)."}
	dropped := &metric{name: "banpush_peer_dropped_total", typ: "counter", help: "Bans dropped before delivery: older than their bantime or --max-age."}
	unbanned := &metric{name: "banpush_peer_unbanned_total", typ: "counter", help: "Unbans the peer acknowledged."}
	cancelled := &metric{name: "banpush_peer_cancelled_total", typ: "counter", help: "Bans not delivered to the peer: an unban of their address was queued after them."}
	reported := &metric{name: "banpush_peer_failure_reports_total", typ: "counter", help: "Failure reports (one per address and batch) the peer acknowledged: fleet detection."}
	r := 0.0
	if rep.SenderRunning {
		r = 1
	}
	running.add(r)
	for _, p := range rep.Peers {
		queued.add(float64(p.Queued), "peer", p.Peer)
		oldest.add(p.OldestAgeSeconds, "peer", p.Peer)
		if p.LastSuccess != nil {
			success.add(float64(p.LastSuccess.Unix()), "peer", p.Peer)
		}
		if p.LastFailure != nil {
			failure.add(float64(p.LastFailure.Unix()), "peer", p.Peer, "class", p.LastFailureClass)
		}
		delivered.add(float64(p.Delivered), "peer", p.Peer)
		refused.add(float64(p.Refused), "peer", p.Peer)
		dropped.add(float64(p.Dropped), "peer", p.Peer)
		unbanned.add(float64(p.Unbanned), "peer", p.Peer)
		cancelled.add(float64(p.Cancelled), "peer", p.Peer)
		reported.add(float64(p.Reported), "peer", p.Peer)
	}
	return []*metric{running, queued, oldest, success, failure, delivered, refused, dropped, unbanned, cancelled, reported}
}

// receiverMetrics are the receiving side's families: each pushing peer's
// counters from the state file beside each received log.
func receiverMetrics(logs map[string]map[string]receive.Counters) []*metric {
	accepted := &metric{name: "banpush_receiver_accepted_total", typ: "counter", help: "Records of the pushing peer that this host's receiver accepted."}
	refused := &metric{name: "banpush_receiver_refused_total", typ: "counter", help: "Records of the pushing peer that the receiver's policy refused."}
	limited := &metric{name: "banpush_receiver_rate_limited_total", typ: "counter", help: "Records of the pushing peer refused by its rate limit (sent again later)."}
	failures := &metric{name: "banpush_receiver_failures_total", typ: "counter", help: "Failures the pushing peer reported that the fleet policy counted here."}
	fleet := &metric{name: "banpush_receiver_fleet_bans_total", typ: "counter", help: "Fleet lines written here on one of the pushing peer's failure reports: its report completed a fleet ban."}
	var paths []string
	for p := range logs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, log := range paths {
		var peers []string
		for p := range logs[log] {
			peers = append(peers, p)
		}
		sort.Strings(peers)
		for _, p := range peers {
			c := logs[log][p]
			accepted.add(float64(c.Accepted), "peer", p, "log", log)
			refused.add(float64(c.Refused), "peer", p, "log", log)
			limited.add(float64(c.Limited), "peer", p, "log", log)
			failures.add(float64(c.Failures), "peer", p, "log", log)
			fleet.add(float64(c.Fleet), "peer", p, "log", log)
		}
	}
	return []*metric{accepted, refused, limited, failures, fleet}
}

// WriteMetrics writes the pushing side's metrics from rep (nil: this host
// does not push) and the receiving side's from received (ReadReceived).
func WriteMetrics(w io.Writer, rep *Report, received map[string]map[string]receive.Counters) error {
	var ms []*metric
	if rep != nil {
		ms = senderMetrics(*rep)
	}
	return writeMetrics(w, append(ms, receiverMetrics(received)...))
}

// ReadReceived reads each pushing peer's counters from the state file
// beside each received log: log -> peer -> counters. A log that does not
// exist is skipped; one whose state cannot be read is left out, and the
// error joins warnings.
func ReadReceived(logs []string) (received map[string]map[string]receive.Counters, warnings []error) {
	received = map[string]map[string]receive.Counters{}
	for _, log := range logs {
		if _, err := os.Stat(log); errors.Is(err, os.ErrNotExist) {
			continue
		}
		counters, err := receive.ReadCounters(log)
		if err != nil {
			warnings = append(warnings, err)
			continue
		}
		received[log] = counters
	}
	return received, warnings
}

// WriteFirewallMetrics writes the fast path's families (banpush
// firewall), from firewall.Inspect.
func WriteFirewallMetrics(w io.Writer, fw firewall.Status) error {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	running := &metric{name: "banpush_firewall_running", typ: "gauge", help: "1 while a 'banpush firewall' service follows the received log."}
	present := &metric{name: "banpush_firewall_set_present", typ: "gauge", help: "1 if the kernel set (nftables table inet banpush) exists."}
	members := &metric{name: "banpush_firewall_set_members", typ: "gauge", help: "Addresses in the kernel set."}
	bans := &metric{name: "banpush_firewall_state_bans", typ: "gauge", help: "Bans in force in the fast path's state file."}
	drift := &metric{name: "banpush_firewall_drift", typ: "gauge", help: "Bans of the state the kernel set lacks (missing), and members the state does not have (extra)."}
	running.add(b(fw.Running))
	present.add(b(fw.SetPresent))
	members.add(float64(fw.Members))
	bans.add(float64(fw.Bans))
	drift.add(float64(fw.Missing), "kind", "missing")
	drift.add(float64(fw.Extra), "kind", "extra")
	return writeMetrics(w, []*metric{running, present, members, bans, drift})
}
