// Package unbanlog reads the unban lines of banpush's received log and
// applies them to the local fail2ban: the root side of a received unban,
// which the unprivileged receiving account cannot apply itself.
//
// What it trusts: its Config and the fail2ban it is given. What it does
// not trust: the received log and the files beside it, which belong to the
// receiving account and may say anything if that account is compromised.
// Lines are read with a length bound and parsed strictly; an address is
// applied only once it has parsed back to its canonical form and passed
// a record.Policy; nothing from the log but that address reaches
// fail2ban. Files are opened without following symbolic links, and only
// regular files are read.
package unbanlog

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
)

// tag marks an unban line of the received log, between its timestamp and
// its address.
const tag = receive.UnbanTag

// otherTags are the tags of the received log's other kinds of line.
var otherTags = []string{receive.LogTag, receive.ReportTag, receive.QuorumTag}

// timeLayout is the timestamp of a received log line (the receiver's).
const timeLayout = receive.TimeLayout

// MaxLineLen is the longest log line read, without its newline: a
// record's longest line plus the timestamp, tag and peer around it.
const MaxLineLen = record.MaxLineLen + 200

// Unban is one unban line of the received log.
type Unban struct {
	Stamp time.Time  // when the receiver wrote it
	Addr  netip.Addr // canonical, unmapped, no zone
	Peer  string     // the peer that sent it
	Jail  string     // the jail it was lifted from at the origin; "" if not given
	Time  int64      // when the origin unbanned it, Unix seconds; 0 if not given
}

// Errors of Parse. Their texts never contain the line.
var (
	// ErrOtherKind is a line of another kind (ban, report, quorum): not
	// an error of the log, only not an unban.
	ErrOtherKind = errors.New("unbanlog: not an unban line")
	// ErrBadLine is an unban line, or a line of unknown kind, that does
	// not have the exact shape the receiver writes.
	ErrBadLine = errors.New("unbanlog: malformed line")
)

// Parse parses one line of the received log, without its newline. It
// returns ErrOtherKind for a well-formed line of another kind (ban, report,
// quorum), and ErrBadLine for anything that is neither: too long, not
// printable ASCII, or an unban line that is not exactly
//
//	STAMP banpush: unban ADDR peer=NAME[ jail=J][ time=T]
//
// with a canonical address (net/netip's String form: no zone, no prefix, no
// IPv4-mapped form, no leading zeros).
func Parse(line []byte) (Unban, error) {
	if len(line) > MaxLineLen {
		return Unban{}, ErrBadLine
	}
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return Unban{}, ErrBadLine
		}
	}
	st, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return Unban{}, ErrBadLine
	}
	stamp, err := time.Parse(timeLayout, string(st))
	if err != nil || stamp.Format(timeLayout) != string(st) {
		return Unban{}, ErrBadLine
	}
	body, ok := bytes.CutPrefix(rest, []byte(tag+" "))
	if !ok {
		for _, other := range otherTags {
			if bytes.HasPrefix(rest, []byte(other+" ")) {
				return Unban{}, ErrOtherKind
			}
		}
		return Unban{}, ErrBadLine
	}
	f := bytes.Split(body, []byte(" "))
	if len(f) < 2 || len(f) > 4 {
		return Unban{}, ErrBadLine
	}
	addr, err := record.ParseAddr(string(f[0]))
	if err != nil || addr.String() != string(f[0]) {
		return Unban{}, ErrBadLine
	}
	u := Unban{Stamp: stamp, Addr: addr}
	peer, ok := bytes.CutPrefix(f[1], []byte("peer="))
	if !ok || !record.ValidName(string(peer)) {
		return Unban{}, ErrBadLine
	}
	u.Peer = string(peer)
	opt := f[2:]
	if len(opt) > 0 {
		if j, ok := bytes.CutPrefix(opt[0], []byte("jail=")); ok {
			if !record.ValidName(string(j)) {
				return Unban{}, ErrBadLine
			}
			u.Jail = string(j)
			opt = opt[1:]
		}
	}
	if len(opt) > 0 {
		t, ok := bytes.CutPrefix(opt[0], []byte("time="))
		if !ok {
			return Unban{}, ErrBadLine
		}
		n, ok := parseTime(string(t))
		if !ok {
			return Unban{}, ErrBadLine
		}
		u.Time = n
		opt = opt[1:]
	}
	if len(opt) > 0 {
		return Unban{}, ErrBadLine
	}
	return u, nil
}

// parseTime parses a positive canonical decimal Unix time, at most
// record.MaxTime.
func parseTime(s string) (int64, bool) {
	if s == "" || len(s) > 12 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 1 && n <= record.MaxTime
}

// AppendLine appends u as the receiver writes it (receive.AppendUnbanLine),
// with its newline: the form Parse reads. It is for tests and tools that
// write unban lines.
func (u Unban) AppendLine(b []byte) []byte {
	return receive.AppendUnbanLine(b, u.Stamp.Format(timeLayout), u.Peer, record.Record{Addr: u.Addr, Jail: u.Jail, Time: u.Time})
}
