package receive

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
)

func TestServe(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name       string
		in         string
		wantOut    string
		wantErr    error
		wantLogged int
	}{
		{"two batches", "203.0.113.1\n203.0.113.2\n\n203.0.113.3\n127.0.0.1\n\n",
			"banpush-v1 ok accepted=2 refused=0\nbanpush-v1 ok accepted=1 refused=1\n", nil, 3},
		{"empty batch", "\n203.0.113.1\n\n", "banpush-v1 ok accepted=0 refused=0\nbanpush-v1 ok accepted=1 refused=0\n", nil, 1},
		{"cut short", "203.0.113.1\n\n203.0.113.2\n203.0.11", "banpush-v1 ok accepted=1 refused=0\n", nil, 1},
		{"no end of batch", "203.0.113.1\n", "", nil, 0},
		{"nothing", "", "", nil, 0},
		{"too many records", strings.Repeat("203.0.113.1\n", wire.MaxRecords+1) + "\n", "", wire.ErrBatchTooLarge, 0},
		{"too many bytes", strings.Repeat("x", wire.MaxBatchBytes+2) + "\n\n", "", wire.ErrBatchTooLarge, 0},
		{"too large after a good one", "203.0.113.1\n\n" + strings.Repeat("y", wire.MaxBatchBytes+2),
			"banpush-v1 ok accepted=1 refused=0\n", wire.ErrBatchTooLarge, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, &now)
			var out, errb bytes.Buffer
			err := Serve(context.Background(), cfg, strings.NewReader(tt.in), &out, &errb, StreamLimits{MaxShown: 10})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", out.String(), tt.wantOut)
			}
			if n := countLines(t, cfg.LogPath); n != tt.wantLogged {
				t.Errorf("log has %d lines, want %d", n, tt.wantLogged)
			}
		})
	}
}

func TestServeMaxBatches(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := testConfig(t, &now)
	var out bytes.Buffer
	in := "203.0.113.1\n\n203.0.113.2\n\n203.0.113.3\n\n"
	if err := Serve(context.Background(), cfg, strings.NewReader(in), &out, &bytes.Buffer{}, StreamLimits{MaxBatches: 2}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "banpush-v1 ok"); n != 2 {
		t.Errorf("%d answers, want 2", n)
	}
}
