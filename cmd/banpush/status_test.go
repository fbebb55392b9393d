package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// statusFixture is a pushing host with two peers, web1 and web2, and
// state for them, and a received log with counters for two pushing peers.
func statusFixture(t *testing.T) (args []string, now time.Time, log string) {
	t.Helper()
	dir := t.TempDir()
	now = time.Unix(1_800_000_000, 0)
	inv := filepath.Join(dir, "peers")
	writeFile(t, inv, "Host web1\n    HostName 192.0.2.10\nHost web2\n    HostName 192.0.2.11\n")
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// web1 has everything delivered; web2 has two bans queued, the oldest
	// for 20 minutes, and failed with a long message.
	if err := sp.SaveState("web1", spool.State{LastSuccess: now.Add(-time.Minute), Delivered: 40, Refused: 2, Dropped: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sp.SaveState("web2", spool.State{LastSuccess: now.Add(-time.Hour), LastFailure: now.Add(-10 * time.Second), LastFailureClass: "unreachable",
		LastFailureMessage: "cannot connect to 192.0.2.11:22: " + strings.Repeat("a very long reason ", 10) + "END", Delivered: 7}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{now.Add(-20 * time.Minute), now.Add(-time.Minute)} {
		if err := sp.Append(context.Background(), at, record.Record{Addr: netip.MustParseAddr("203.0.113.7")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Advance("web1", mustEnd(t, sp)); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "received.log")
	writeFile(t, log, "")
	for _, b := range []struct{ peer, batch string }{{"db", "203.0.113.1\n10.0.0.1\n"}, {"web9", "203.0.113.2\n"}} {
		cfg := receive.Config{Peer: b.peer, LogPath: log, MaxBurst: 10, MaxPerMinute: 1, LockTimeout: time.Second, Now: time.Now}
		if _, err := receive.Accept(context.Background(), cfg, strings.NewReader(b.batch)); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--inventory", inv, "--spool", filepath.Join(dir, "spool"), "--self", "none"}, now, log
}

// mustEnd is the journal position after its last record.
func mustEnd(t *testing.T, sp *spool.Spool) spool.Position {
	t.Helper()
	pos, err := sp.Cursor("web1")
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := sp.Read(pos, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if b.Next == pos {
			return pos
		}
		pos = b.Next
	}
}

func runStatus(t *testing.T, now time.Time, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(args, &Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }, Now: func() time.Time { return now }})
	return o.String(), e.String(), code
}

// TestStatusPrometheus: status --prometheus passes Prometheus's own text
// parser, with the metrics and values status shows, for the sender and for
// the receiver.
func TestStatusPrometheus(t *testing.T) {
	args, now, log := statusFixture(t)
	out, stderr, code := runStatus(t, now, append(args, "status", "--prometheus", "--received-log", log)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("the exposition parser refuses the output: %v\n%s", err, out)
	}
	value := func(name string, labels ...string) (float64, bool) {
		f, ok := families[name]
		if !ok {
			return 0, false
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels...) {
				switch f.GetType() {
				case dto.MetricType_COUNTER:
					return m.GetCounter().GetValue(), true
				default:
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"banpush_sender_running", nil, 0},
		{"banpush_peer_queued", []string{"peer", "web1"}, 0},
		{"banpush_peer_queued", []string{"peer", "web2"}, 2},
		{"banpush_peer_oldest_queued_age_seconds", []string{"peer", "web2"}, 1200},
		{"banpush_peer_last_success_timestamp_seconds", []string{"peer", "web1"}, float64(now.Add(-time.Minute).Unix())},
		{"banpush_peer_last_failure_timestamp_seconds", []string{"peer", "web2", "class", "unreachable"}, float64(now.Add(-10 * time.Second).Unix())},
		{"banpush_peer_delivered_total", []string{"peer", "web1"}, 40},
		{"banpush_peer_refused_total", []string{"peer", "web1"}, 2},
		{"banpush_peer_dropped_total", []string{"peer", "web1"}, 1},
		{"banpush_receiver_accepted_total", []string{"peer", "db", "log", log}, 1},
		{"banpush_receiver_refused_total", []string{"peer", "db", "log", log}, 1},
		{"banpush_receiver_rate_limited_total", []string{"peer", "web9", "log", log}, 0},
	}
	for _, tt := range tests {
		if got, ok := value(tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%q = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if _, ok := value("banpush_peer_last_failure_timestamp_seconds", "peer", "web1"); ok {
		t.Error("a last failure for web1, which never failed")
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "banpush_") || f.GetHelp() == "" {
			t.Errorf("family %s: want a banpush_ name and a help text", name)
		}
	}

	// --output replaces a file atomically, for node_exporter's textfile
	// collector; the same text.
	prom := filepath.Join(t.TempDir(), "banpush.prom")
	if _, stderr, code := runStatus(t, now, append(args, "status", "--prometheus", "--received-log", log, "--output", prom)...); code != 0 {
		t.Fatalf("--output: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(prom); err != nil || string(b) != out {
		t.Errorf("--output wrote %q (%v), want what stdout had", b, err)
	}

	// A host with no inventory (a receiver only) still has its receiver's
	// metrics.
	out, stderr, code = runStatus(t, now, "--inventory", filepath.Join(t.TempDir(), "none"), "--spool", filepath.Join(t.TempDir(), "spool"),
		"status", "--prometheus", "--received-log", log)
	if code != 0 || !strings.Contains(out, "banpush_receiver_accepted_total{") || strings.Contains(out, "banpush_sender_running") {
		t.Errorf("receiver only: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	if _, err := parser.TextToMetricFamilies(strings.NewReader(out)); err != nil {
		t.Errorf("receiver only: %v", err)
	}
}

func hasLabels(m *dto.Metric, labels ...string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}

// TestStatusCutsLongFailures: the table cuts a long failure message, so
// that it stays readable; --json has it whole.
func TestStatusCutsLongFailures(t *testing.T) {
	args, now, _ := statusFixture(t)
	out, stderr, code := runStatus(t, now, append(args, "status")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "web2 ") && (strings.Contains(l, "END") || !strings.Contains(l, "...")) {
			t.Errorf("the table has the whole message: %q", l)
		}
		if len(l) > 200 {
			t.Errorf("a line of %d bytes: %q", len(l), l)
		}
	}
	out, _, _ = runStatus(t, now, append(args, "status", "--json")...)
	if !strings.Contains(out, "a very long reason END") {
		t.Errorf("--json cut the message:\n%s", out)
	}
}

// TestStatusFits100: the table fits 100 columns, with a long failure
// message and every count in use; the counts that are zero for every peer
// are left out, and --json keeps every field.
func TestStatusFits100(t *testing.T) {
	args, now, _ := statusFixture(t)
	out, stderr, code := runStatus(t, now, append(args, "status")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("status:\n%s", out)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if len(l) > 100 {
			t.Errorf("a line of %d columns, want at most 100: %q", len(l), l)
		}
	}
	header := regexp.MustCompile(`(?m)^PEER +QUEUED +OLDEST +LAST OK +DELIVERED +REFUSED +DROPPED +LAST FAILURE$`)
	if !header.MatchString(out) {
		t.Errorf("no header with the counts in use (refused, dropped) and none of the others (unbanned, cancelled):\n%s", out)
	}
	for _, want := range []string{`(?m)^web1 +0 +- +1m ago +40 +2 +1 +-$`, `(?m)^web2 +2 +20m +1h ago +7 +0 +0 +unreachable 10s ago: cannot connect .*\.\.\.$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no line matching %s:\n%s", want, out)
		}
	}
	out, _, _ = runStatus(t, now, append(args, "status", "--json")...)
	for _, key := range []string{`"refused": 2`, `"dropped": 1`, `"unbanned": 0`, `"cancelled": 0`, `"last_failure_message"`} {
		if !strings.Contains(out, key) {
			t.Errorf("--json lacks %s:\n%s", key, out)
		}
	}
}

// TestNoSpoolMadeByReading: status (table, JSON and metrics) and peers
// remove on a host whose spool does not exist yet say what there is and
// leave it missing: a look makes no root-only directory.
func TestNoSpoolMadeByReading(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "peers")
	writeFile(t, inv, "Host web1\n    HostName 192.0.2.10\nHost web2\n    HostName 192.0.2.11\n")
	sp := filepath.Join(dir, "spool")
	args := []string{"--inventory", inv, "--spool", sp, "--self", "none"}
	now := time.Unix(1_800_000_000, 0)
	for _, cmd := range [][]string{{"status"}, {"status", "--json"}, {"status", "--prometheus", "--received-log", filepath.Join(dir, "none.log")}, {"peers", "remove", "web2"}} {
		out, stderr, code := runStatus(t, now, append(args, cmd...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s%s", cmd, code, out, stderr)
		}
		if cmd[0] == "status" && !strings.Contains(out, "web1") {
			t.Errorf("%v: web1 not shown\n%s", cmd, out)
		}
		if _, err := os.Stat(sp); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v made the spool (stat: %v)", cmd, err)
		}
	}
}
