package logtail

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// maxLine is the line bound of the tests' Readers: the received log's
// (maxLine), which the tests were first written for.
const maxLine = 1024

// readAll reads every line after cur and returns them with the cursor
// after the last and the count of lines passed over.
func readAll(t *testing.T, log string, cur *Cursor) (lines []string, end Cursor, bad int, start Start) {
	t.Helper()
	r, err := Open(log, cur, maxLine)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	for {
		l, c, err := r.Next()
		switch {
		case err == io.EOF:
			return lines, c, bad, r.Start
		case errors.Is(err, ErrSkipped):
			bad++
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			lines = append(lines, string(l))
		}
		end = c
	}
}

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

// step is one change to the log directory before a read.
type step struct {
	do        func(t *testing.T, log string)
	want      string // the lines read, joined by "|"
	wantBad   int
	wantStart Start
}

func write(s string) func(*testing.T, string) {
	return func(t *testing.T, log string) { appendFile(t, log, s) }
}

// rotate does what logrotate's rename + create does.
func rotate(t *testing.T, log string) {
	t.Helper()
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, "")
}

// copyTruncate does what logrotate's copytruncate does.
func copyTruncate(t *testing.T, log string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log+".1", b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRotation(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "continue", steps: []step{
			{do: write("a\nb\n"), want: "a|b", wantStart: StartFirst},
			{do: write("c\n"), want: "c", wantStart: StartContinued},
			{do: write(""), want: "", wantStart: StartContinued},
		}},
		{name: "torn last line is not consumed", steps: []step{
			{do: write("a\nb"), want: "a", wantStart: StartFirst},
			{do: write(""), want: "", wantStart: StartContinued},
			{do: write("c\nd\n"), want: "bc|d", wantStart: StartContinued},
		}},
		{name: "rotation", steps: []step{
			{do: write("a\n"), want: "a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "b\n")
				rotate(t, log)
				appendFile(t, log, "c\n")
			}, want: "b|c", wantStart: StartRotated},
			{do: write("d\n"), want: "d", wantStart: StartContinued},
		}},
		{name: "write to the old file after the rename", steps: []step{
			{do: write("a\n"), want: "a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				rotate(t, log)
				appendFile(t, log+".1", "late\n")
			}, want: "late", wantStart: StartRotated},
			{do: write("c\n"), want: "c", wantStart: StartContinued},
		}},
		{name: "rotation while the new log is missing", steps: []step{
			{do: write("a\n"), want: "a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "b\n")
				os.Rename(log, log+".1")
			}, want: "b", wantStart: StartRotated},
			{do: write("c\n"), want: "c", wantStart: StartRotated},
			{do: write("d\n"), want: "d", wantStart: StartContinued},
		}},
		{name: "torn line in the rotated file is passed over", steps: []step{
			{do: write("a\n"), want: "a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "cut")
				rotate(t, log)
				appendFile(t, log, "c\n")
			}, want: "c", wantBad: 1, wantStart: StartRotated},
		}},
		{name: "copytruncate", steps: []step{
			{do: write("first line\n"), want: "first line", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "b\n")
				copyTruncate(t, log)
				appendFile(t, log, "c\n")
			}, want: "b|c", wantStart: StartRotated},
			{do: write("d\n"), want: "d", wantStart: StartContinued},
		}},
		{name: "truncated in place", steps: []step{
			{do: write("a long first line\n"), want: "a long first line", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				os.Truncate(log, 0)
				appendFile(t, log, "x\n")
			}, want: "x", wantStart: StartLost},
		}},
		{name: "rewritten in place, longer", steps: []step{
			{do: write("2026 a\n"), want: "2026 a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				os.WriteFile(log, []byte("2027 b\n2027 c\n"), 0o640)
			}, want: "2027 b|2027 c", wantStart: StartLost},
		}},
		{name: "rotated twice: both files from the start", steps: []step{
			{do: write("a\n"), want: "a", wantStart: StartFirst},
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "lost\n")
				rotate(t, log)
				appendFile(t, log, "b\n")
				os.Remove(log + ".1")
				rotate(t, log)
				appendFile(t, log, "c\n")
			}, want: "b|c", wantStart: StartLost},
		}},
		{name: "first run reads LOG.1 too", steps: []step{
			{do: func(t *testing.T, log string) {
				appendFile(t, log, "a\n")
				rotate(t, log)
				appendFile(t, log, "b\n")
			}, want: "a|b", wantStart: StartFirst},
		}},
		{name: "overlong lines", steps: []step{
			{do: write("a\n" + strings.Repeat("x", 5*maxLine) + "\nb\n"), want: "a|b", wantBad: 1, wantStart: StartFirst},
			{do: write(strings.Repeat("y", 3*maxLine)), want: "", wantStart: StartContinued},
			{do: write("\nc\n"), want: "c", wantBad: 1, wantStart: StartContinued},
		}},
		{name: "line of exactly the bound", steps: []step{
			{do: write(strings.Repeat("z", maxLine) + "\n" + strings.Repeat("w", maxLine+1) + "\n"), want: strings.Repeat("z", maxLine), wantBad: 1, wantStart: StartFirst},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "received.log")
			var cur *Cursor
			for i, s := range tt.steps {
				s.do(t, log)
				lines, end, bad, start := readAll(t, log, cur)
				if got := strings.Join(lines, "|"); got != s.want || bad != s.wantBad || start != s.wantStart {
					t.Fatalf("step %d: got %q, %d bad, start %s; want %q, %d bad, start %s", i, got, bad, start, s.want, s.wantBad, s.wantStart)
				}
				cur = &end
			}
		})
	}
}

// TestReaderLongLineRotated: a cursor inside an unfinished long line
// survives a rotation: the rest of LOG.1 is that line, one line passed
// over, and the new log is read from its start.
func TestReaderLongLineRotated(t *testing.T) {
	log := filepath.Join(t.TempDir(), "received.log")
	appendFile(t, log, "a\n"+strings.Repeat("x", 3*maxLine))
	lines, end, bad, _ := readAll(t, log, nil)
	if fi, err := os.Stat(log); err != nil || strings.Join(lines, "|") != "a" || bad != 0 || end.Offset != fi.Size() {
		t.Fatalf("first read: %q, %d bad, cursor %+v; want a, and the cursor past the long line's bytes", lines, bad, end)
	}
	appendFile(t, log, strings.Repeat("y", maxLine))
	rotate(t, log)
	appendFile(t, log, "b\n")
	lines, end, bad, start := readAll(t, log, &end)
	if strings.Join(lines, "|") != "b" || bad != 1 || start != StartRotated || end.Offset != 2 {
		t.Fatalf("after the rotation: %q, %d bad, start %s, cursor %+v; want b, 1 bad, rotated", lines, bad, start, end)
	}
}

func TestReaderRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "secret")
	appendFile(t, target, "x\n")
	log := filepath.Join(dir, "received.log")
	if err := os.Symlink(target, log); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(log, nil, maxLine); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symbolic link as the log: got %v, want a refusal", err)
	}
	os.Remove(log)
	appendFile(t, log, "a\n")
	if err := os.Symlink(target, log+".1"); err != nil {
		t.Fatal(err)
	}
	lines, _, _, _ := readAll(t, log, nil)
	if strings.Join(lines, "|") != "a" {
		t.Fatalf("a symbolic link as LOG.1 was read: %q", lines)
	}
	os.Remove(log)
	if err := unix.Mkfifo(log, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(log, nil, maxLine); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a FIFO as the log: got %v, want a refusal", err)
	}
	os.Remove(log)
	os.Remove(log + ".1")
	if _, err := Open(log, nil, maxLine); !errors.Is(err, ErrNoLog) {
		t.Fatalf("no log: got %v, want ErrNoLog", err)
	}
}

func TestCursorFile(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "cursor")
	if c, err := LoadCursor(state); c != nil || err != nil {
		t.Fatalf("missing cursor: got %v, %v", c, err)
	}
	want := Cursor{Dev: 1, Ino: 2, Offset: 3, Tail: fingerprint([]byte("abc"))}
	if err := SaveCursor(state, want); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(state); fi.Mode().Perm() != 0o600 {
		t.Errorf("cursor mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadCursor(state)
	if err != nil || *got != want {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "{", `{"dev":1,"ino":2,"offset":-1,"tail":"` + want.Tail + `"}`, `{"offset":1,"tail":"00"}`, `{"extra":1}`} {
		os.WriteFile(state, []byte(bad), 0o600)
		if _, err := LoadCursor(state); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	os.Remove(state)
	os.Symlink(filepath.Join(dir, "elsewhere"), state)
	if _, err := LoadCursor(state); err == nil {
		t.Error("a symbolic link as the cursor: accepted")
	}
}

// TestEnd: a cursor at the end of the log reads only what comes after,
// an unfinished last line included once whole.
func TestEnd(t *testing.T) {
	tests := []struct {
		name     string
		before   func(t *testing.T, log string)
		after    string // appended to the log after End
		want     string // the lines read then, joined by "|"
		wantBad  int
		wantSkip bool
	}{
		{name: "whole lines", before: write("a\nb\n"), after: "c\n", want: "c"},
		{name: "empty", before: write(""), after: "c\n", want: "c"},
		{name: "unfinished last line", before: write("a\nb"), after: "c\nd\n", want: "bc|d"},
		{name: "one unfinished line", before: write("b"), after: "c\n", want: "bc"},
		{name: "unfinished long line", before: write("a\n" + strings.Repeat("x", 2*maxLine)), after: "x\nd\n", want: "d", wantBad: 1, wantSkip: true},
		{name: "long last line, whole", before: write("a\n" + strings.Repeat("x", 2*maxLine) + "\n"), after: "d\n", want: "d"},
		{name: "only LOG.1", before: func(t *testing.T, log string) {
			appendFile(t, log, "a\n")
			os.Rename(log, log+".1")
		}, after: "b\n", want: "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "fail2ban.log")
			tt.before(t, log)
			cur, err := End(log, maxLine)
			if err != nil {
				t.Fatal(err)
			}
			if cur.Skip != tt.wantSkip {
				t.Errorf("Skip %v, want %v", cur.Skip, tt.wantSkip)
			}
			appendFile(t, log, tt.after)
			lines, _, bad, _ := readAll(t, log, &cur)
			if got := strings.Join(lines, "|"); got != tt.want || bad != tt.wantBad {
				t.Errorf("got %q, %d passed over; want %q, %d", got, bad, tt.want, tt.wantBad)
			}
		})
	}
	if _, err := End(filepath.Join(t.TempDir(), "none.log"), maxLine); !errors.Is(err, ErrNoLog) {
		t.Errorf("no log: got %v, want ErrNoLog", err)
	}
}
