package status

import (
	"bytes"
	"testing"
	"time"

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
