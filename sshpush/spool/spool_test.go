package spool

import (
	"context"
	"errors"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

var t0 = time.Unix(1700000000, 123456789)

// rec returns a distinct, valid record for each i < 65536.
func rec(i int) record.Record {
	return record.Record{
		Addr:    netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
		Jail:    "sshd",
		Time:    1700000000 + int64(i),
		BanTime: 600,
	}
}

func newSpool(t testing.TB, opt Options) *Spool {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "spool"), opt)
	if err != nil {
		t.Fatal(err)
	}
	s.noSync = true
	return s
}

func appendN(t testing.TB, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(context.Background(), t0.Add(time.Duration(i)), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads from pos to the end in small batches.
func readAll(t testing.TB, s *Spool, pos Position) ([]Entry, []Skipped, Position) {
	t.Helper()
	var ents []Entry
	var skipped []Skipped
	for {
		b, err := s.Read(pos, 7, 1000)
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, b.Entries...)
		skipped = append(skipped, b.Skipped...)
		if b.Next.Less(pos) {
			t.Fatalf("Read went back from %v to %v", pos, b.Next)
		}
		pos = b.Next
		if !b.More {
			return ents, skipped, pos
		}
	}
}

// wantRecords checks that ents holds exactly records first..first+n-1 in order.
func wantRecords(t *testing.T, ents []Entry, first, n int) {
	t.Helper()
	if len(ents) != n {
		t.Fatalf("got %d records, want %d", len(ents), n)
	}
	for i, e := range ents {
		if e.Record != rec(first+i) {
			t.Fatalf("record %d: got %v, want %v", i, e.Record, rec(first+i))
		}
	}
}

func segFile(s *Spool, seq uint64) string { return s.segPath(seq) }

func appendRaw(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func lineFor(i int) string {
	return string(appendLine(nil, t0.Add(time.Duration(i)).UnixNano(), Item{Record: rec(i)}))
}

func TestLineCodec(t *testing.T) {
	good := strings.TrimSuffix(lineFor(1), "\n")
	body := good[9:]
	tests := []struct {
		name   string
		line   string
		reason string
	}{
		{"good", good, ""},
		{"minimal", "a3b1c5c5 1 ::", "?"}, // checksum computed below
		{"empty", "", reasonChecksum},
		{"checksum only", good[:9], reasonChecksum},
		{"flipped checksum digit", "0" + good[1:], reasonChecksum},
		{"uppercase checksum", strings.ToUpper(good[:8]) + good[8:], reasonChecksum},
		{"no space after checksum", good[:8] + "x" + good[9:], reasonChecksum},
		{"flipped body byte", good[:len(good)-1] + "1", reasonChecksum},
		{"leading zero nanos", withSum("0" + body), reasonQueued},
		{"zero nanos", withSum("0 " + rec(1).String()), reasonQueued},
		{"negative nanos", withSum("-5 " + rec(1).String()), reasonQueued},
		{"nanos overflow", withSum("99999999999999999999 " + rec(1).String()), reasonQueued},
		{"no record", withSum("5"), reasonQueued},
		{"bad record", withSum("5 999.1.1.1"), reasonRecord},
		{"empty record", withSum("5 "), reasonRecord},
		{"too long", withSum("5 " + strings.Repeat("a", maxLine)), reasonLong},
		{"unban", withSum("5 unban " + rec(1).String()), ""},
		{"for one peer", withSum("5 to=web1 " + rec(1).String()), ""},
		{"unban for one peer", withSum("5 unban to=web1 " + rec(1).String()), ""},
		{"peer before kind", withSum("5 to=web1 unban " + rec(1).String()), reasonRecord},
		{"two kinds", withSum("5 unban unban " + rec(1).String()), reasonRecord},
		{"empty peer", withSum("5 to= " + rec(1).String()), reasonRecord},
		{"bad peer", withSum("5 to=../x " + rec(1).String()), reasonRecord},
		{"unban alone", withSum("5 unban"), reasonRecord},
		{"unknown kind", withSum("5 ban " + rec(1).String()), reasonRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line, want := tc.line, tc.reason
			if want == "?" {
				line, want = withSum("1 ::"), ""
			}
			_, _, got := decodeLine([]byte(line))
			if got != want {
				t.Errorf("decodeLine(%q): got reason %q, want %q", line, got, want)
			}
		})
	}
}

// withSum prefixes body with its checksum, computed independently of the
// code under test.
func withSum(body string) string {
	s := strconv.FormatUint(uint64(crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli))), 16)
	return strings.Repeat("0", 8-len(s)) + s + " " + body
}

func TestLineRoundTrip(t *testing.T) {
	recs := []record.Record{
		{Addr: netip.MustParseAddr("203.0.113.7")},
		{Addr: netip.MustParseAddr("2001:db8::1"), Jail: "nginx-http-auth"},
		{Addr: netip.MustParseAddr("198.51.100.1"), Time: record.MaxTime, BanTime: record.Permanent},
		{Addr: netip.MustParseAddr("198.51.100.2"), Jail: strings.Repeat("j", 64), Time: 1, BanTime: record.MaxBanTime},
	}
	var items []Item
	for _, r := range recs {
		items = append(items, Item{Record: r}, Item{Kind: Unban, Record: r},
			Item{To: "web1", Record: r}, Item{Kind: Unban, To: strings.Repeat("p", 64), Record: r})
	}
	for _, q := range []int64{1, t0.UnixNano(), 1<<63 - 1} {
		for _, it := range items {
			l := appendLine(nil, q, it)
			if l[len(l)-1] != '\n' || len(l) > maxLine {
				t.Fatalf("line %q: bad length or ending", l)
			}
			got, gq, reason := decodeLine(l[:len(l)-1])
			if reason != "" || got != it || gq != q {
				t.Errorf("round trip of %v at %d: got %v, %d, %q", it, q, got, gq, reason)
			}
		}
	}
}

func TestSegName(t *testing.T) {
	tests := []struct {
		name string
		file string
		seq  uint64
		ok   bool
	}{
		{"one", "0000000000000001", 1, true},
		{"big", "1234567890123456", 1234567890123456, true},
		{"zero", "0000000000000000", 0, false},
		{"short", "000000000000001", 0, false},
		{"temp", ".000000000000001", 0, false},
		{"letters", "00000000000000a1", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, ok := parseSegName(tc.file)
			if seq != tc.seq || ok != tc.ok {
				t.Errorf("parseSegName(%q): got %d, %v, want %d, %v", tc.file, seq, ok, tc.seq, tc.ok)
			}
			if ok && segName(seq) != tc.file {
				t.Errorf("segName(%d): got %q, want %q", seq, segName(seq), tc.file)
			}
		})
	}
}

func TestAppendRead(t *testing.T) {
	s := newSpool(t, Options{})
	if b, err := s.Read(Position{}, 10, 1000); err != nil || len(b.Entries) != 0 || b.More {
		t.Fatalf("Read of an empty spool: got %+v, %v", b, err)
	}
	// One call with several records, then single records.
	if err := s.Append(context.Background(), t0, rec(0), rec(1), rec(2)); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3, 7)
	ents, skipped, end := readAll(t, s, Position{})
	wantRecords(t, ents, 0, 10)
	if len(skipped) != 0 {
		t.Errorf("got skipped %v, want none", skipped)
	}
	if e, _ := s.End(); end != e {
		t.Errorf("final Next: got %v, want End %v", end, e)
	}
	if !ents[0].Queued.Equal(t0) || !ents[5].Queued.Equal(t0.Add(5)) {
		t.Errorf("queued times: got %v and %v", ents[0].Queued, ents[5].Queued)
	}
	for i := 1; i < len(ents); i++ {
		if !ents[i-1].Next.Less(ents[i].Next) {
			t.Fatalf("entry %d: Next %v not after %v", i, ents[i].Next, ents[i-1].Next)
		}
	}

	t.Run("limits", func(t *testing.T) {
		lineLen := int(ents[0].Next.Off)
		tests := []struct {
			name       string
			from       Position
			maxRecords int
			maxBytes   int
			want       int
			more       bool
		}{
			{"all", Position{}, 100, 1 << 20, 10, false},
			{"three records", Position{}, 3, 1 << 20, 3, true},
			{"two lines of bytes", Position{}, 100, 2*lineLen + 1, 2, true},
			{"one byte still returns one", Position{}, 100, 1, 1, true},
			{"from the middle", ents[6].Next, 100, 1 << 20, 3, false},
			{"from the end", end, 100, 1 << 20, 0, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b, err := s.Read(tc.from, tc.maxRecords, tc.maxBytes)
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Entries) != tc.want || b.More != tc.more {
					t.Errorf("got %d entries, More %v; want %d, %v", len(b.Entries), b.More, tc.want, tc.more)
				}
				if len(b.Entries) > 0 && b.Next != b.Entries[len(b.Entries)-1].Next {
					t.Errorf("Next: got %v, want the last entry's %v", b.Next, b.Entries[len(b.Entries)-1].Next)
				}
			})
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		if _, err := s.Read(Position{}, 0, 10); err == nil {
			t.Error("maxRecords 0: got no error")
		}
		if _, err := s.Read(Position{Seg: 99}, 10, 10); !errors.Is(err, ErrPosition) {
			t.Errorf("position past the end: got %v, want ErrPosition", err)
		}
		if _, err := s.Read(Position{Seg: 1, Off: -1}, 10, 10); !errors.Is(err, ErrPosition) {
			t.Errorf("negative offset: got %v, want ErrPosition", err)
		}
	})
}

func TestAppendRefusesBadRecords(t *testing.T) {
	s := newSpool(t, Options{})
	tests := []struct {
		name string
		r    record.Record
	}{
		{"zero address", record.Record{}},
		{"bad jail", record.Record{Addr: rec(1).Addr, Jail: "a b"}},
		{"time out of range", record.Record{Addr: rec(1).Addr, Time: record.MaxTime + 1}},
		{"zoned address", record.Record{Addr: netip.MustParseAddr("fe80::1%eth0")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Append(context.Background(), t0, rec(1), tc.r); err == nil {
				t.Error("got no error")
			}
		})
	}
	if err := s.Append(context.Background(), time.Unix(0, 0), rec(1)); err == nil {
		t.Error("queued at the epoch: got no error")
	}
	if e, _ := s.End(); e != (Position{}) {
		t.Errorf("after refused appends: End %v, want an empty journal", e)
	}
}

func TestSegmentRollOver(t *testing.T) {
	s := newSpool(t, Options{SegmentSize: 300})
	appendN(t, s, 0, 40)
	segs, err := s.segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 5 {
		t.Fatalf("got %d segments, want several", len(segs))
	}
	for i, seq := range segs {
		if seq != uint64(i+1) {
			t.Fatalf("segments: got %v, want 1..n", segs)
		}
		fi, err := os.Stat(segFile(s, seq))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("segment %d: got mode %v, want 0600", seq, fi.Mode().Perm())
		}
	}
	ents, _, _ := readAll(t, s, Position{})
	wantRecords(t, ents, 0, 40)
	// A batch that ends a segment hands over the start of the next.
	for _, e := range ents {
		fi, _ := os.Stat(segFile(s, e.Next.Seg))
		b, err := s.Read(Position{Seg: e.Next.Seg}, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if b.Next.Seg != segs[len(segs)-1] && b.Next.Off >= fi.Size() {
			t.Fatalf("Read to the end of segment %d: got Next %v, want the next segment's start", e.Next.Seg, b.Next)
		}
	}
	fi, _ := os.Stat(s.appendLock)
	if fi.Size() != hintLen {
		t.Errorf("append.lock: got %d bytes, want the %d-byte hint", fi.Size(), hintLen)
	}
}

func TestCompact(t *testing.T) {
	s := newSpool(t, Options{SegmentSize: 300})
	appendN(t, s, 0, 40)
	ents, _, end := readAll(t, s, Position{})
	segs, _ := s.segments()
	last := segs[len(segs)-1]

	if err := s.Advance("a", end); err != nil {
		t.Fatal(err)
	}
	mid := ents[20].Next
	if err := s.Advance("b", mid); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState("b", State{Delivered: 21}); err != nil {
		t.Fatal(err)
	}

	// "c" has no cursor: it starts at the start and holds everything back.
	if err := s.Compact([]string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.segments(); len(got) != len(segs) {
		t.Errorf("with a new peer: got %d segments, want all %d kept", len(got), len(segs))
	}

	if err := s.Compact([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.segments()
	if got[0] != mid.Seg || got[len(got)-1] != last {
		t.Errorf("after compacting to b's cursor %v: got segments %v", mid, got)
	}
	entsB, _, _ := readAll(t, s, mid)
	wantRecords(t, entsB, 21, 19)

	// Removing b from the list drops its cursor and state; a's cursor is
	// at the end, but the last segment stays.
	if err := s.Compact([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.segments()
	if len(got) != 1 || got[0] != last {
		t.Errorf("after compacting to the end: got segments %v, want [%d]", got, last)
	}
	for _, p := range []string{s.path(cursorDir, "b"), s.path(peerDir, "b.json")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: got %v, want it removed", p, err)
		}
	}
	if c, _ := s.Cursor("a"); c != end {
		t.Errorf("a's cursor: got %v, want %v", c, end)
	}
	// A removed peer comes back at the start of what is retained.
	if pos, err := s.Cursor("b"); err != nil || pos != (Position{}) {
		t.Errorf("b's cursor: got %v, %v, want the start", pos, err)
	}
	appendN(t, s, 40, 3)
	ents, _, _ = readAll(t, s, Position{})
	if len(ents) == 0 || ents[len(ents)-1].Record != rec(42) {
		t.Errorf("after compaction, appends still read back: got %d entries", len(ents))
	}
	if err := s.Compact([]string{"a", "../x"}); !errors.Is(err, ErrPeerName) {
		t.Errorf("Compact with a bad name: got %v, want ErrPeerName", err)
	}
}

func TestCursor(t *testing.T) {
	s := newSpool(t, Options{})
	if pos, err := s.Cursor("web1"); err != nil || pos != (Position{}) {
		t.Fatalf("new peer: got %v, %v, want the start", pos, err)
	}
	appendN(t, s, 0, 5)
	ents, _, _ := readAll(t, s, Position{})

	steps := []struct {
		name string
		pos  Position
		want Position
		err  error
	}{
		{"forward", ents[2].Next, ents[2].Next, nil},
		{"back is ignored", ents[0].Next, ents[2].Next, nil},
		{"same is ignored", ents[2].Next, ents[2].Next, nil},
		{"to the end", ents[4].Next, ents[4].Next, nil},
		{"past the end of the segment", Position{Seg: 1, Off: 1 << 20}, ents[4].Next, ErrPosition},
		{"past the last segment", Position{Seg: 2}, ents[4].Next, ErrPosition},
		{"negative", Position{Seg: 1, Off: -1}, ents[4].Next, ErrPosition},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := s.Advance("web1", st.pos)
			if !errors.Is(err, st.err) {
				t.Fatalf("Advance(%v): got %v, want %v", st.pos, err, st.err)
			}
			got, err := s.Cursor("web1")
			if err != nil || got != st.want {
				t.Errorf("Cursor: got %v, %v, want %v", got, err, st.want)
			}
		})
	}
	data, err := os.ReadFile(s.path(cursorDir, "web1"))
	if err != nil || string(data) != "1 "+strconv.FormatInt(ents[4].Next.Off, 10)+"\n" {
		t.Errorf("cursor file: got %q, %v", data, err)
	}
	for _, bad := range []string{"", ".", "..", "../etc", "a/b", strings.Repeat("x", 65)} {
		if _, err := s.Cursor(bad); !errors.Is(err, ErrPeerName) {
			t.Errorf("Cursor(%q): got %v, want ErrPeerName", bad, err)
		}
		if err := s.Advance(bad, Position{}); !errors.Is(err, ErrPeerName) {
			t.Errorf("Advance(%q): got %v, want ErrPeerName", bad, err)
		}
	}
}

func TestCorruptCursor(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    func(end Position) Position
	}{
		{"garbage", "\x00\x01garbage", func(Position) Position { return Position{} }},
		{"no newline", "1 0", func(Position) Position { return Position{} }},
		{"leading zero", "01 0\n", func(Position) Position { return Position{} }},
		{"negative", "1 -5\n", func(Position) Position { return Position{} }},
		{"past the last segment", "7 0\n", func(Position) Position { return Position{} }},
		{"past the end of the segment", "1 999999\n", func(Position) Position { return Position{Seg: 1} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t, Options{})
			appendN(t, s, 0, 3)
			if err := os.WriteFile(s.path(cursorDir, "p"), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			end, _ := s.End()
			want := tc.want(end)
			pos, err := s.Cursor("p")
			var cfe *CorruptFileError
			if !errors.As(err, &cfe) || cfe.Path != "cursors/p" {
				t.Fatalf("got error %v, want a CorruptFileError for cursors/p", err)
			}
			if pos != want {
				t.Errorf("got %v, want %v", pos, want)
			}
			// Repaired: the next call is clean, and every record is ahead.
			if pos, err := s.Cursor("p"); err != nil || pos != want {
				t.Errorf("second call: got %v, %v, want %v, nil", pos, err, want)
			}
			ents, _, _ := readAll(t, s, pos)
			wantRecords(t, ents, 0, 3)
		})
	}
}

func TestPendingRemovePeer(t *testing.T) {
	s := newSpool(t, Options{SegmentSize: 300})
	if ok, err := s.HasPending([]string{"a", "b"}); err != nil || ok {
		t.Errorf("HasPending on an empty spool: got %v, %v", ok, err)
	}
	appendN(t, s, 0, 30)
	ents, _, end := readAll(t, s, Position{})
	if err := s.Advance("a", end); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance("b", ents[9].Next); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer   string
		n      int
		oldest time.Time
	}{
		{"a", 0, time.Time{}},
		{"b", 20, t0.Add(10)},
		{"new", 30, t0},
	}
	for _, tc := range tests {
		n, oldest, err := s.Pending(tc.peer)
		if err != nil || n != tc.n || !oldest.Equal(tc.oldest) {
			t.Errorf("Pending(%s): got %d, %v, %v; want %d, %v", tc.peer, n, oldest, err, tc.n, tc.oldest)
		}
	}
	if ok, err := s.HasPending([]string{"a"}); err != nil || ok {
		t.Errorf("HasPending(a): got %v, %v, want false", ok, err)
	}
	if ok, err := s.HasPending([]string{"a", "b"}); err != nil || !ok {
		t.Errorf("HasPending(a, b): got %v, %v, want true", ok, err)
	}
	// A line still being written is not pending.
	appendRaw(t, segFile(s, end.Seg), lineFor(99)[:20])
	if ok, err := s.HasPending([]string{"a"}); err != nil || ok {
		t.Errorf("HasPending(a) with a partial line: got %v, %v, want false", ok, err)
	}
	if err := s.SaveState("b", State{Delivered: 10}); err != nil {
		t.Fatal(err)
	}
	n, err := s.RemovePeer("b")
	if err != nil || n != 20 {
		t.Errorf("RemovePeer(b): got %d, %v, want 20", n, err)
	}
	if st, err := s.LoadState("b"); err != nil || st != (State{}) {
		t.Errorf("state after RemovePeer: got %+v, %v", st, err)
	}
	if n, err := s.RemovePeer("never-seen"); err != nil || n != 30 {
		t.Errorf("RemovePeer(never-seen): got %d, %v, want 30", n, err)
	}
}

func TestState(t *testing.T) {
	s := newSpool(t, Options{})
	if st, err := s.LoadState("p"); err != nil || st != (State{}) {
		t.Fatalf("missing state: got %+v, %v", st, err)
	}
	want := State{
		LastSuccess:        time.Unix(1700000000, 0).UTC(),
		LastFailure:        time.Unix(1700000100, 5).UTC(),
		LastFailureClass:   "hostkey",
		LastFailureMessage: "host key changed",
		Delivered:          3, Dropped: 2, Refused: 1,
	}
	if err := s.SaveState("p", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadState("p")
	if err != nil || got != want {
		t.Errorf("round trip: got %+v, %v, want %+v", got, err, want)
	}
	fi, err := os.Stat(s.path(peerDir, "p.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: got %v, %v, want mode 0600", fi, err)
	}
	if err := os.WriteFile(s.path(peerDir, "p.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfe *CorruptFileError
	if st, err := s.LoadState("p"); !errors.As(err, &cfe) || st != (State{}) {
		t.Errorf("garbage state: got %+v, %v, want a CorruptFileError", st, err)
	}
	if st, err := s.LoadState("p"); err != nil || st != (State{}) {
		t.Errorf("after the repair: got %+v, %v, want the zero State", st, err)
	}
	if err := s.SaveState("../p", want); !errors.Is(err, ErrPeerName) {
		t.Errorf("SaveState(../p): got %v, want ErrPeerName", err)
	}
}

func TestSkippedString(t *testing.T) {
	tests := []struct {
		name string
		k    Skipped
		want string
	}{
		{"one", Skipped{Position{3, 120}, 1, 40, reasonChecksum},
			"spool: segment 3 offset 120: 1 corrupt line (40 bytes) skipped: bad checksum"},
		{"several", Skipped{Position{1, 0}, 2, 96, reasonTorn},
			"spool: segment 1 offset 0: 2 corrupt lines (96 bytes) skipped: torn line at end of segment"},
	}
	for _, tc := range tests {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir does not exist yet
		ok    bool
	}{
		{"new", func(*testing.T, string) {}, true},
		{"existing 0700", func(t *testing.T, dir string) { mkdir(t, dir, 0o700) }, true},
		{"existing 0755", func(t *testing.T, dir string) { mkdir(t, dir, 0o755) }, true},
		{"group writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o770) }, false},
		{"world writable", func(t *testing.T, dir string) { mkdir(t, dir, 0o1777) }, false},
		{"a file", func(t *testing.T, dir string) { writeFile(t, dir, "") }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			tc.setup(t, dir)
			_, err := Open(dir, Options{})
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			for _, sub := range []string{journalDir, cursorDir, peerDir} {
				fi, err := os.Stat(filepath.Join(dir, sub))
				if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: got %v, %v, want a 0700 directory", sub, fi, err)
				}
			}
		})
	}
}

func mkdir(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestChecksum: the journal's CRC-32C is hash/crc32's, on the standard
// check input and on lines of every length up to a long one.
func TestChecksum(t *testing.T) {
	if got := checksum([]byte("123456789")); got != 0xe3069283 {
		t.Errorf("checksum(123456789) = %#x, want 0xe3069283", got)
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	b := make([]byte, 600)
	for i := range b {
		b[i] = byte(i*131 + i>>3)
	}
	for n := range len(b) + 1 {
		if got, want := checksum(b[:n]), crc32.Checksum(b[:n], tab); got != want {
			t.Fatalf("checksum of %d bytes = %#x, hash/crc32 says %#x", n, got, want)
		}
	}
}
