package spool

import (
	"os"
	"strings"
	"testing"
)

// wantOrder checks that ents holds the records of want, in order.
func wantOrder(t *testing.T, ents []Entry, want []int) {
	t.Helper()
	if len(ents) != len(want) {
		t.Fatalf("got %d records, want %d", len(ents), len(want))
	}
	for i, e := range ents {
		if e.Record != rec(want[i]) {
			t.Fatalf("record %d: got %v, want %v", i, e.Record, rec(want[i]))
		}
	}
}

func TestTornAppend(t *testing.T) {
	s := newSpool(t, Options{})
	appendN(t, s, 0, 3)
	end, _ := s.End()
	half := lineFor(100)[:25]
	appendRaw(t, segFile(s, 1), half)

	// A line without its newline at the end of the journal may still be
	// being written: it is neither returned nor skipped.
	ents, skipped, next := readAll(t, s, Position{})
	wantRecords(t, ents, 0, 3)
	if len(skipped) != 0 || next != end {
		t.Errorf("before the next append: got skipped %v and Next %v, want none and %v", skipped, next, end)
	}

	// The next append ends the torn line first; it reads as one corrupt line.
	appendN(t, s, 3, 3)
	ents, skipped, _ = readAll(t, s, Position{})
	wantRecords(t, ents, 0, 6)
	want := Skipped{Pos: end, Lines: 1, Bytes: int64(len(half)) + 1, Reason: reasonChecksum}
	if len(skipped) != 1 || skipped[0] != want {
		t.Errorf("got skipped %v, want [%v]", skipped, want)
	}
	// A reader that had stopped before the torn line carries on from there.
	ents, _, _ = readAll(t, s, next)
	wantRecords(t, ents, 3, 3)
}

func TestGarbageInSegment(t *testing.T) {
	long := strings.Repeat("x", 3*readBufSize+17)
	tests := []struct {
		name    string
		garbage string
		want    []int // records read, in order
		lines   int   // corrupt lines reported
		reason  string
	}{
		{"binary line", "\x00\xff\x01garbage\n", []int{0, 1, 2, 3, 4, 5}, 1, reasonChecksum},
		{"zeros without newline", strings.Repeat("\x00", 4096), []int{0, 1, 2, 3, 4, 5}, 1, reasonLong},
		{"short zeros without newline", strings.Repeat("\x00", 100), []int{0, 1, 2, 3, 4, 5}, 1, reasonChecksum},
		{"several bad lines", "a\nb\n\nc\n", []int{0, 1, 2, 3, 4, 5}, 4, reasonChecksum},
		{"good checksum bad record", withSum("5 999.1.1.1") + "\n", []int{0, 1, 2, 3, 4, 5}, 1, reasonRecord},
		{"good checksum bad queued time", withSum("05 "+rec(9).String()) + "\n", []int{0, 1, 2, 3, 4, 5}, 1, reasonQueued},
		{"flipped bit", strings.Replace(lineFor(50), "sshd", "sshe", 1), []int{0, 1, 2, 3, 4, 5}, 1, reasonChecksum},
		{"overlong line", long + "\n", []int{0, 1, 2, 3, 4, 5}, 1, reasonLong},
		{"garbage glued to a good line", "junk" + lineFor(50), []int{0, 1, 2, 50, 3, 4, 5}, 1, reasonChecksum},
		{"overlong garbage glued to a good line", long + lineFor(50), []int{0, 1, 2, 50, 3, 4, 5}, 1, reasonLong},
		{"torn line glued to a good line", lineFor(60)[:30] + lineFor(50), []int{0, 1, 2, 50, 3, 4, 5}, 1, reasonChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t, Options{})
			appendN(t, s, 0, 3)
			at, _ := s.End()
			appendRaw(t, segFile(s, 1), tc.garbage)
			appendN(t, s, 3, 3)
			ents, skipped, _ := readAll(t, s, Position{})
			wantOrder(t, ents, tc.want)
			lines := 0
			for _, k := range skipped {
				lines += k.Lines
			}
			if len(skipped) == 0 || skipped[0].Pos != at || skipped[0].Reason != tc.reason || lines != tc.lines {
				t.Errorf("got skipped %v, want %d lines from %v for %q", skipped, tc.lines, at, tc.reason)
			}
		})
	}
}

func TestTornTailBeforeNextSegment(t *testing.T) {
	s := newSpool(t, Options{SegmentSize: 300})
	appendN(t, s, 0, 10)
	segs, _ := s.segments()
	if len(segs) < 2 {
		t.Fatalf("got segments %v, want at least two", segs)
	}
	fi, _ := os.Stat(segFile(s, 1))
	n1 := countLines(t, segFile(s, 1))
	// Tear the last line of segment 1 as a crash in the middle of a write
	// would, with segment 2 already there.
	if err := os.Truncate(segFile(s, 1), fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	ents, skipped, _ := readAll(t, s, Position{})
	want := make([]int, 0, 10)
	for i := 0; i < 10; i++ {
		if i != n1-1 {
			want = append(want, i)
		}
	}
	wantOrder(t, ents, want)
	if len(skipped) != 1 || skipped[0].Reason != reasonTorn || skipped[0].Pos.Seg != 1 {
		t.Errorf("got skipped %v, want one torn line in segment 1", skipped)
	}
}

func TestTruncatedLastSegment(t *testing.T) {
	s := newSpool(t, Options{})
	appendN(t, s, 0, 5)
	fi, _ := os.Stat(segFile(s, 1))
	if err := os.Truncate(segFile(s, 1), fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	ents, skipped, _ := readAll(t, s, Position{})
	wantRecords(t, ents, 0, 4)
	if len(skipped) != 0 {
		t.Errorf("torn end of the last segment: got skipped %v, want none yet", skipped)
	}
	appendN(t, s, 5, 2)
	ents, skipped, _ = readAll(t, s, Position{})
	wantOrder(t, ents, []int{0, 1, 2, 3, 5, 6})
	if len(skipped) != 1 {
		t.Errorf("after the next append: got skipped %v, want one", skipped)
	}
}

func TestAppendHint(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, s *Spool) // after records 0..2 in segment 1
		wantSeg uint64                       // the segment record 3 lands in
	}{
		{"good hint", func(*testing.T, *Spool) {}, 1},
		{"garbage hint", func(t *testing.T, s *Spool) {
			writeFile(t, s.appendLock, "xyz")
		}, 1},
		{"hint names a missing segment", func(t *testing.T, s *Spool) {
			writeFile(t, s.appendLock, segName(9)+"\n")
		}, 1},
		{"hint behind the journal", func(t *testing.T, s *Spool) {
			writeFile(t, segFile(s, 2), "")
			writeFile(t, s.appendLock, segName(1)+"\n")
		}, 2},
		{"journal deleted", func(t *testing.T, s *Spool) {
			if err := os.Remove(segFile(s, 1)); err != nil {
				t.Fatal(err)
			}
		}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t, Options{})
			appendN(t, s, 0, 3)
			tc.setup(t, s)
			appendN(t, s, 3, 1)
			b, err := s.Read(Position{Seg: tc.wantSeg}, 10, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(b.Entries); n == 0 || b.Entries[n-1].Record != rec(3) || b.Entries[n-1].Next.Seg != tc.wantSeg {
				t.Errorf("got %+v, want record 3 last, in segment %d", b.Entries, tc.wantSeg)
			}
			hint, ok := readHintFile(t, s)
			if !ok || hint != tc.wantSeg {
				t.Errorf("hint after the append: got %d, %v, want %d", hint, ok, tc.wantSeg)
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readHintFile(t *testing.T, s *Spool) (uint64, bool) {
	t.Helper()
	f, err := os.Open(s.appendLock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readHint(f)
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
