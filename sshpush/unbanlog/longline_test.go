package unbanlog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logtail"
)

// TestApplyLongUnfinishedLine: an unfinished line longer than logline.MaxLen
// at the end of the log (1 MiB written and a 256 MiB hole, as
// 'truncate -s +256M' makes) is read once: the cursor moves past it and
// remembers to pass over the rest of it, so the next run reads on from
// there instead of from the start of the line (issue 25 finding 4). What
// lies before the cursor is not read again, and the line counts as one
// malformed line once its newline comes.
func TestApplyLongUnfinishedLine(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jails = []string{"banpush"}
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	appendFile(t, cfg.Log, unbanLine("203.0.113.7", time.Minute))
	lineStart := fileSize(t, cfg.Log)
	appendFile(t, cfg.Log, strings.Repeat("A", 1<<20))
	if err := os.Truncate(cfg.Log, lineStart+1<<20+256<<20); err != nil {
		t.Fatal(err)
	}
	f := &fakeF2B{banned: map[string]bool{"banpush 203.0.113.7": true, "banpush 203.0.113.8": true, "banpush 203.0.113.9": true}}
	if _, err := Apply(context.Background(), cfg, f); err != nil {
		t.Fatal(err)
	}
	cur, err := logtail.LoadCursor(cfg.State)
	if err != nil || cur == nil {
		t.Fatalf("cursor: %v, %v", cur, err)
	}
	if size := fileSize(t, cfg.Log); cur.Offset != size {
		t.Errorf("cursor at %d after a run over an unfinished %d-byte line from %d, want %d (past what was read of it)", cur.Offset, size-lineStart, lineStart, size)
	}

	// A line planted inside the long line, before the cursor, is never
	// read; the newline that ends the long line, and the line after it,
	// are.
	w, err := os.OpenFile(cfg.Log, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("\n"+unbanLine("203.0.113.8", 0)), lineStart+1000); err != nil {
		t.Fatal(err)
	}
	w.Close()
	appendFile(t, cfg.Log, "\n"+unbanLine("203.0.113.9", 0))
	f.calls = nil
	rep, err := Apply(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "|"); got != "banpush 203.0.113.9" || rep.Skipped.Bad != 1 || rep.Start != logtail.StartContinued {
		t.Errorf("second run: calls %q, %+v; want only 203.0.113.9, the long line one malformed line", got, rep)
	}
	if cur, _ := logtail.LoadCursor(cfg.State); cur == nil || cur.Offset != fileSize(t, cfg.Log) {
		t.Errorf("cursor after the long line ended: %+v, want at the end", cur)
	}
	appendFile(t, cfg.Log, unbanLine("203.0.113.10", 0))
	f.banned["banpush 203.0.113.10"] = true
	f.calls = nil
	if rep, err := Apply(context.Background(), cfg, f); err != nil || strings.Join(f.calls, "|") != "banpush 203.0.113.10" || rep.Skipped.Bad != 0 {
		t.Errorf("third run: %v, calls %q, %+v; want the next line read as a line", err, f.calls, rep)
	}
}

// appendFile appends s to path, creating it (0640) if it is missing.
func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
