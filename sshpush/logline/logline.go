// Package logline is the received log's line format: every kind of line
// 'banpush receive' appends to the log that fail2ban watches, written and
// read in this one place. The receiver writes lines with Line.AppendStamped;
// apply-unbans and doctor read them with Parse; the filters in
// contrib/fail2ban/filter.d match them, and this package's tests prove
// with the real fail2ban-regex which filter bans on which kind.
//
// A line is
//
//	STAMP TAG ADDR peer=NAME[ jail=J][ time=T][ bantime=B][ failures=F][ reports=N][ hosts=H]
//
// with STAMP the time of receipt (TimeLayout), TAG the kind's ("banpush:
// ban", ...), ADDR an address in canonical form, and the fields those of
// the record (sshpush/record) as the peer sent them. An unban line has no
// bantime; only a quorum line has reports, and always has it; only a fleet
// line has hosts, and always has it with failures (the fleet's count),
// and never a bantime.
//
// What it trusts: nothing it parses. A reader of the log may be root while
// the log belongs to the receiving account, so Parse bounds the length,
// accepts only printable ASCII, and accepts a line only if writing back
// what it parsed gives the same bytes.
package logline

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// Kind is the kind of a line.
type Kind uint8

// The kinds of line, each marked by its tag (Tag).
const (
	// Ban is an address a full-trust peer banned: the banpush filter
	// bans on it.
	Ban Kind = iota + 1
	// Report is a quorum peer's report of an address: a record of who
	// said what, for people; no filter bans on it.
	Report
	// Quorum is written when a report completes a quorum of distinct
	// peers: the banpush-quorum filter bans on it.
	Quorum
	// Unban is an unban from a peer allowed to lift bans: for 'banpush
	// apply-unbans', which lifts the ban as root; no filter matches it.
	Unban
	// Fleet is written when the failures the fleet's hosts reported of
	// an address reach the fleet policy's threshold: the banpush-fleet
	// filter bans on it.
	Fleet
)

// Kinds are every kind of line, for tests and tools that must cover them
// all.
var Kinds = []Kind{Ban, Report, Quorum, Unban, Fleet}

var kindNames = [...]string{Ban: "ban", Report: "report", Quorum: "quorum", Unban: "unban", Fleet: "fleet"}

// String returns the kind's name: "ban", "report", "quorum", "unban" or
// "fleet".
func (k Kind) String() string {
	if k < Ban || k > Fleet {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Tag returns the fixed text between a line's timestamp and its address:
// "banpush: " and the kind's name. The filters match on it.
func (k Kind) Tag() string { return "banpush: " + k.String() }

// TimeLayout is a line's timestamp: the time of receipt, ISO 8601 with the
// receiver's UTC offset, which fail2ban's date detector reads.
const TimeLayout = "2006-01-02T15:04:05-07:00"

// MaxLen is the longest line Parse reads, without its newline: a record's
// longest line with the timestamp, tag, peer and reports around it.
const MaxLen = record.MaxLineLen + 200

// maxReports bounds a quorum line's reports and a fleet line's hosts: far
// more peers than a quorum or a fleet ever needs.
const maxReports = 1_000_000

// Line is one line of the received log.
type Line struct {
	Kind Kind
	// Time is when the receiver wrote the line, to the second, in the
	// receiver's UTC offset. AppendStamped does not use it.
	Time time.Time
	// Peer is the name of the peer that sent it (record.ValidName).
	Peer string
	// Record is the address and fields the peer sent. An unban line
	// never holds a bantime: it is not written.
	Record record.Record
	// Reports is, on a quorum line, how many distinct peers reported the
	// address within the window; 0 on any other kind.
	Reports int
	// Hosts is, on a fleet line, how many distinct hosts reported
	// failures of the address within the window (their count is
	// Record.Failures); 0 on any other kind.
	Hosts int
}

// Append appends the line, with its newline, to b: the form Parse reads.
func (l Line) Append(b []byte) []byte {
	return l.AppendStamped(b, l.Time.Format(TimeLayout))
}

// AppendStamped appends the line, with its newline, to b, with stamp (the
// time of receipt formatted with TimeLayout) for its time: the receiver
// formats the time once for a whole batch. It is built only from values
// the receiver validated; a Reports is written on a quorum line only, a
// Hosts on a fleet line only, a bantime on neither an unban nor a fleet
// line, failures on a fleet line only.
func (l Line) AppendStamped(b []byte, stamp string) []byte {
	b = append(b, stamp...)
	b = append(b, ' ')
	b = append(b, l.Kind.Tag()...)
	b = append(b, ' ')
	b = l.Record.Addr.AppendTo(b)
	b = append(b, " peer="...)
	b = append(b, l.Peer...)
	rec := l.Record
	if l.Kind == Unban || l.Kind == Fleet {
		rec.BanTime = 0
	}
	if l.Kind != Fleet {
		rec.Failures = 0
	}
	b = rec.AppendFields(b)
	switch l.Kind {
	case Quorum:
		b = append(b, " reports="...)
		b = strconv.AppendInt(b, int64(l.Reports), 10)
	case Fleet:
		b = append(b, " hosts="...)
		b = strconv.AppendInt(b, int64(l.Hosts), 10)
	}
	return append(b, '\n')
}

// countKey is the field that ends a line of the kinds that carry a count.
var countKey = [...]string{Quorum: " reports=", Fleet: " hosts=", Unban: ""}

// ErrBadLine is returned by Parse for a line that is not exactly one the
// receiver writes. Its text never contains the line.
var ErrBadLine = errors.New("not a line of banpush's received log")

// Parse parses one line of the received log, without its newline. It
// accepts exactly what AppendStamped writes: any other line, too long, not
// printable ASCII, of no known kind, with an address or a number not in
// canonical form or its fields out of order, is ErrBadLine.
func Parse(line []byte) (Line, error) {
	if len(line) > MaxLen {
		return Line{}, ErrBadLine
	}
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return Line{}, ErrBadLine
		}
	}
	st, rest, _ := bytes.Cut(line, []byte(" "))
	at, err := time.Parse(TimeLayout, string(st))
	if err != nil {
		return Line{}, ErrBadLine
	}
	l := Line{Time: at}
	for _, k := range Kinds {
		if body, ok := bytes.CutPrefix(rest, []byte(k.Tag()+" ")); ok {
			l.Kind, rest = k, body
			break
		}
	}
	if l.Kind == 0 {
		return Line{}, ErrBadLine
	}
	if key := countKey[l.Kind]; key != "" {
		i := bytes.LastIndex(rest, []byte(key))
		if i < 0 {
			return Line{}, ErrBadLine
		}
		n, err := strconv.Atoi(string(rest[i+len(key):]))
		if err != nil || n < 1 || n > maxReports {
			return Line{}, ErrBadLine
		}
		if l.Kind == Quorum {
			l.Reports = n
		} else {
			l.Hosts = n
		}
		rest = rest[:i]
	}
	addr, rest, _ := bytes.Cut(rest, []byte(" "))
	peerField, fields, _ := bytes.Cut(rest, []byte(" "))
	peer, ok := bytes.CutPrefix(peerField, []byte("peer="))
	if !ok || !record.ValidName(string(peer)) {
		return Line{}, ErrBadLine
	}
	l.Peer = string(peer)
	text := addr
	if len(fields) > 0 {
		text = append(append(append([]byte(nil), addr...), ' '), fields...)
	}
	if l.Record, err = record.Parse(text); err != nil || l.Kind == Fleet && l.Record.Failures == 0 {
		return Line{}, ErrBadLine
	}
	// The canonical form: what was parsed writes back as it was read,
	// time stamp included.
	if !bytes.Equal(l.Append(make([]byte, 0, len(line)+1)), append(line[:len(line):len(line)], '\n')) {
		return Line{}, ErrBadLine
	}
	return l, nil
}
