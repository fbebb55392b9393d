package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {42*time.Second + 600*time.Millisecond, "42s"}, {5*time.Minute + 3*time.Second, "5m3s"},
		{time.Hour, "1h"}, {2*time.Hour + 7*time.Minute + 59*time.Second, "2h7m"}, {76 * time.Hour, "3d4h"}, {48 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		if got := short(tt.d); got != tt.want {
			t.Errorf("short(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestStatusMetricsEscape(t *testing.T) {
	var b bytes.Buffer
	m := &metric{name: "banpush_x", typ: "gauge", help: "a \\ help\nline"}
	m.add(1, "log", "/var/log/a \"b\"\\c\n")
	if err := writeMetrics(&b, []*metric{m}); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	f, err := parser.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got := f["banpush_x"].GetMetric()[0].GetLabel()[0].GetValue(); got != "/var/log/a \"b\"\\c\n" {
		t.Errorf("label %q, want it back unescaped", got)
	}
}

func TestWriteTableFirewall(t *testing.T) {
	var b strings.Builder
	rep := Report{Spool: "/s", Peers: []Peer{}, Firewall: &firewall.Status{Running: true, SetPresent: true, Members: 9, Bans: 10, Missing: 1}}
	if err := WriteTable(&b, rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	if want := "firewall running, 10 bans in force, kernel set of 9 (1 missing, 0 extra)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("table:\n%s\nwant a line %q", b.String(), want)
	}
}

// TestFirewallMetrics: the fast path's families parse with Prometheus's
// own parser, with their values.
func TestFirewallMetrics(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFirewallMetrics(&b, firewall.Status{Running: true, SetPresent: true, Members: 9, Bans: 10, Missing: 1}); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for name, want := range map[string]float64{"banpush_firewall_running": 1, "banpush_firewall_set_present": 1, "banpush_firewall_set_members": 9, "banpush_firewall_state_bans": 10} {
		f, ok := fams[name]
		if !ok || f.GetMetric()[0].GetGauge().GetValue() != want {
			t.Errorf("%s: %v, want %v", name, f, want)
		}
	}
	if d := fams["banpush_firewall_drift"]; d == nil || len(d.GetMetric()) != 2 {
		t.Errorf("banpush_firewall_drift: %v, want missing and extra", d)
	}
}
