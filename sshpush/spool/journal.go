package spool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/banpush/banpush/sshpush/record"
)

// maxLine is the longest journal line, newline included: checksum, space,
// up to 19 digits of nanoseconds, space, the kind ("unban "), the target
// ("to=" and a name of up to 64 bytes, space), the longest record, newline.
const maxLine = 8 + 1 + 19 + 1 + len(unbanWord) + 1 + len(toPrefix) + 64 + 1 + record.MaxLineLen + 1

// The optional words between the queued time and the record. A record
// starts with an address, which is never "unban", "fail" or starts with
// "to=".
const (
	unbanWord = "unban"
	failWord  = "fail"
	toPrefix  = "to="
)

// minLine is the shortest possible journal line without its newline:
// checksum, space, one digit, space, and a two-character address ("::").
const minLine = 8 + 1 + 1 + 1 + 2

// castagnoli is the CRC-32C table for byte-at-a-time updates, which suit
// lines this short. hash/crc32 is not imported: its package initialisation
// builds its IEEE table at the start of every push and every receiver,
// and crc32.MakeTable(crc32.Castagnoli) would also build its tables for
// long inputs (0.2 ms).
var castagnoli = castagnoliTable()

// castagnoliPoly is the CRC-32C polynomial, bit-reversed
// (hash/crc32.Castagnoli).
const castagnoliPoly = 0x82f63b78

func castagnoliTable() *[256]uint32 {
	t := new([256]uint32)
	for i := range t {
		crc := uint32(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ castagnoliPoly
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}

// checksum is the CRC-32C of b, as hash/crc32 computes it (TestChecksum).
func checksum(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc = castagnoli[byte(crc)^c] ^ crc>>8
	}
	return ^crc
}

// Reasons a line is skipped. Part of the messages Skipped.String makes.
const (
	reasonChecksum = "bad checksum"
	reasonQueued   = "bad queued time"
	reasonRecord   = "bad record"
	reasonLong     = "line too long"
	reasonTorn     = "torn line at end of segment"
	reasonMissing  = "segment missing"
)

// appendLine appends the journal line for it, queued at the given Unix
// nanoseconds, to b.
func appendLine(b []byte, queued int64, it Item) []byte {
	start := len(b)
	b = append(b, "00000000 "...)
	body := len(b)
	b = strconv.AppendInt(b, queued, 10)
	b = append(b, ' ')
	if it.Kind != Ban {
		b = append(b, it.Kind.String()...)
		b = append(b, ' ')
	}
	if it.To != "" {
		b = append(b, toPrefix...)
		b = append(b, it.To...)
		b = append(b, ' ')
	}
	b = it.Record.AppendText(b)
	sum := checksum(b[body:])
	const hexdigits = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		b[start+i] = hexdigits[sum&0xf]
		sum >>= 4
	}
	return append(b, '\n')
}

// decodeLine decodes one journal line given without its newline. On failure
// it returns one of the reason texts.
func decodeLine(line []byte) (it Item, queued int64, reason string) {
	if len(line) > maxLine-1 {
		return it, 0, reasonLong
	}
	if len(line) < 9 || line[8] != ' ' {
		return it, 0, reasonChecksum
	}
	sum, ok := parseHex8(line[:8])
	if !ok || sum != checksum(line[9:]) {
		return it, 0, reasonChecksum
	}
	rest := line[9:]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return it, 0, reasonQueued
	}
	queued, ok = parseNanos(rest[:sp])
	if !ok {
		return it, 0, reasonQueued
	}
	rest = rest[sp+1:]
	if w, after, ok := bytes.Cut(rest, []byte{' '}); ok {
		switch string(w) {
		case unbanWord:
			it.Kind, rest = Unban, after
		case failWord:
			it.Kind, rest = Failure, after
		}
	}
	if w, after, ok := bytes.Cut(rest, []byte{' '}); ok && bytes.HasPrefix(w, []byte(toPrefix)) {
		it.To, rest = string(w[len(toPrefix):]), after
		if !record.ValidName(it.To) {
			return Item{}, 0, reasonRecord
		}
	}
	r, err := record.Parse(rest)
	if err != nil {
		return Item{}, 0, reasonRecord
	}
	it.Record = r
	return it, queued, ""
}

// parseHex8 parses exactly eight lowercase hexadecimal digits.
func parseHex8(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b[:8] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint32(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseNanos parses a canonical positive decimal int64.
func parseNanos(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 || b[0] == '0' {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// isLineStart reports whether b begins like a journal line: eight lowercase
// hex digits and a space.
func isLineStart(b []byte) bool {
	if len(b) < 9 || b[8] != ' ' {
		return false
	}
	_, ok := parseHex8(b)
	return ok
}

// recoverSuffix looks for a valid journal line that ends a corrupt one:
// garbage without a newline in front of a good line turns both into one bad
// line, and the good record must not be lost. It returns the index in line
// where the good line starts, or -1. The work is bounded: line holds at most
// the last maxLine bytes, and candidate starts are at least 9 bytes apart.
func recoverSuffix(line []byte) (int, Item, int64) {
	for j := 1; j+minLine <= len(line); j++ {
		if !isLineStart(line[j:]) {
			continue
		}
		if it, q, reason := decodeLine(line[j:]); reason == "" {
			return j, it, q
		}
	}
	return -1, Item{}, 0
}

// segName is the file name of segment seq.
func segName(seq uint64) string {
	var buf [20]byte
	return string(appendSegName(buf[:0], seq))
}

// appendSegName appends the file name of segment seq to b: at least 16
// digits, zero-padded.
func appendSegName(b []byte, seq uint64) []byte {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], seq, 10)
	for i := len(d); i < 16; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// segPath is the path of segment seq.
func (s *Spool) segPath(seq uint64) string {
	var buf [256]byte
	return string(appendSegName(append(buf[:0], s.segPrefix...), seq))
}

// parseSegName parses a segment file name; other names are not segments.
func parseSegName(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(name, 10, 64)
	return n, err == nil && n > 0
}

// segments lists the journal's segment numbers in ascending order.
func (s *Spool) segments() ([]uint64, error) {
	d, err := os.Open(s.path(journalDir))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, n := range names {
		if seq, ok := parseSegName(n); ok {
			segs = append(segs, seq)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

// lineScanner splits a segment into lines, tracking offsets. Lines longer
// than its buffer are returned truncated to their last maxLine bytes with
// long set, so that a good line hidden behind garbage can still be found.
type lineScanner struct {
	r    *bufio.Reader
	off  int64 // offset of the next unread byte
	tail []byte
}

func newLineScanner(r io.Reader, off int64, size int) *lineScanner {
	return &lineScanner{r: bufio.NewReaderSize(r, size), off: off}
}

// next returns the next complete line without its newline, its start
// offset and its length with the newline. At the end of the data it
// returns io.EOF, with partial set if bytes without a final newline remain
// (they are not consumed). The returned line is valid until the next call.
func (ls *lineScanner) next() (line []byte, start, n int64, partial bool, err error) {
	start = ls.off
	b, err := ls.r.ReadSlice('\n')
	if err == nil {
		ls.off += int64(len(b))
		return b[:len(b)-1], start, int64(len(b)), false, nil
	}
	if errors.Is(err, io.EOF) {
		return nil, start, 0, len(b) > 0, io.EOF
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, start, 0, false, err
	}
	// An overlong line: keep its last maxLine bytes.
	total := int64(len(b))
	ls.tail = keepLast(ls.tail[:0], b)
	for {
		b, err = ls.r.ReadSlice('\n')
		total += int64(len(b))
		switch {
		case err == nil:
			ls.off += total
			ls.tail = keepLast(ls.tail, b[:len(b)-1])
			return ls.tail, start, total, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			ls.tail = keepLast(ls.tail, b)
		case errors.Is(err, io.EOF):
			return nil, start, 0, true, io.EOF
		default:
			return nil, start, 0, false, err
		}
	}
}

// keepLast appends b to dst and keeps only the last maxLine bytes.
func keepLast(dst, b []byte) []byte {
	dst = append(dst, b...)
	if len(dst) > maxLine {
		n := copy(dst, dst[len(dst)-maxLine:])
		dst = dst[:n]
	}
	return dst
}
