package spool

import (
	"bytes"
	"cmp"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

// verifyLine checks a journal line (without its newline) by the format's
// definition, independently of decodeLine.
func verifyLine(l []byte) (Item, int64, bool) {
	if len(l) < 9 || l[8] != ' ' || strings.Trim(string(l[:8]), "0123456789abcdef") != "" {
		return Item{}, 0, false
	}
	sum, err := strconv.ParseUint(string(l[:8]), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(l[9:], crc32.MakeTable(crc32.Castagnoli)) {
		return Item{}, 0, false
	}
	qs, rs, ok := strings.Cut(string(l[9:]), " ")
	q, err := strconv.ParseInt(qs, 10, 64)
	if !ok || err != nil || q <= 0 || strconv.FormatInt(q, 10) != qs {
		return Item{}, 0, false
	}
	var it Item
	if rest, ok := strings.CutPrefix(rs, "unban "); ok {
		it.Kind, rs = Unban, rest
	}
	if strings.HasPrefix(rs, "to=") {
		to, rest, _ := strings.Cut(rs[3:], " ")
		if !record.ValidName(to) {
			return Item{}, 0, false
		}
		it.To, rs = to, rest
	}
	it.Record, err = record.Parse([]byte(rs))
	return it, q, err == nil
}

func FuzzReadSegment(f *testing.F) {
	good := lineFor(1) + lineFor(2)
	f.Add([]byte(""))
	f.Add([]byte(good))
	f.Add([]byte(good + lineFor(3)[:20]))
	f.Add([]byte("junk" + good + "\n\n"))
	f.Add([]byte(lineFor(4)[:30] + "\n" + good))
	f.Add([]byte(strings.Repeat("\x00", 600) + good))
	f.Add([]byte(strings.Repeat("y", 2*readBufSize) + lineFor(5)))
	f.Add([]byte(withSum("5 999.1.1.1") + "\n" + withSum("01 ::") + "\n"))
	f.Add([]byte(withSum("5 ::ffff:1.2.3.4 jail=a") + "\n"))
	f.Add([]byte(withSum("5 unban to=web1 203.0.113.7 jail=a") + "\n" + withSum("5 to=a b 1.2.3.4") + "\n"))
	f.Add([]byte(withSum("5 unban unban 1.2.3.4") + "\n" + withSum("5 to= 1.2.3.4") + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, last := range []bool{true, false} {
			b := Batch{}
			rd := reader{b: &b, maxRecords: 1 << 30, maxBytes: 1 << 40}
			stop, err := rd.scan(bytes.NewReader(data), 1, 0, int64(len(data)), last)
			if err != nil || stop != last || b.More {
				t.Fatalf("last=%v: got stop %v, More %v, err %v", last, stop, b.More, err)
			}
			complete := int64(bytes.LastIndexByte(data, '\n') + 1)
			if want := map[bool]int64{true: complete, false: int64(len(data))}[last]; b.Next.Off != want {
				t.Fatalf("last=%v: got Next %v, want offset %d", last, b.Next, want)
			}

			// Every entry is a line that verifies, and entries and skipped
			// bytes cover the input up to Next exactly once, in order.
			type span struct{ from, to int64 }
			var spans []span
			for _, k := range b.Skipped {
				if k.Lines < 1 || k.Bytes < 1 {
					t.Fatalf("empty skipped span %v", k)
				}
				spans = append(spans, span{k.Pos.Off, k.Pos.Off + k.Bytes})
			}
			byEnd := map[int64]Entry{}
			for _, e := range b.Entries {
				end := e.Next.Off
				if end < 1 || end > int64(len(data)) || data[end-1] != '\n' {
					t.Fatalf("entry %v: Next %v is not after a newline", e.Record, e.Next)
				}
				line := data[bytes.LastIndexByte(data[:end-1], '\n')+1 : end-1]
				from := int64(-1)
				for j := range line {
					if r, q, ok := verifyLine(line[j:]); ok && r == e.Item && q == e.Queued.UnixNano() {
						from = end - 1 - int64(len(line)-j)
						break
					}
				}
				if from < 0 {
					t.Fatalf("entry %v ending at %d: no line there verifies", e.Record, end)
				}
				spans = append(spans, span{from, end})
				byEnd[end] = e
			}
			slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from, b.from) })
			at := int64(0)
			for _, s := range spans {
				if s.from != at {
					t.Fatalf("last=%v: bytes %d..%d neither returned nor skipped (spans %v)", last, at, s.from, spans)
				}
				at = s.to
			}
			if at != b.Next.Off {
				t.Fatalf("last=%v: accounted for %d bytes, Next is %v", last, at, b.Next)
			}

			// Every well-formed complete line is returned.
			start := 0
			for i, c := range data {
				if c != '\n' {
					continue
				}
				if r, q, ok := verifyLine(data[start:i]); ok {
					e, found := byEnd[int64(i+1)]
					if !found || e.Item != r || e.Queued.UnixNano() != q {
						t.Fatalf("well-formed line at %d (%v) not returned", start, r)
					}
				}
				start = i + 1
			}
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0 0\n", "1 0\n", "18446744073709551615 9223372036854775807\n", "01 0\n", "1 -1\n", "1 2", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pos, ok := parseCursor(data)
		if !ok {
			return
		}
		if pos.Off < 0 {
			t.Fatalf("%q: negative offset %d", data, pos.Off)
		}
		if want := strconv.FormatUint(pos.Seg, 10) + " " + strconv.FormatInt(pos.Off, 10) + "\n"; string(data) != want {
			t.Fatalf("%q parsed as %v, which writes as %q", data, pos, want)
		}
	})
}
