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
	"errors"
	"net/netip"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

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
	// ErrOtherKind is a well-formed line of another kind (ban, report,
	// quorum): not an error of the log, only not an unban.
	ErrOtherKind = errors.New("unbanlog: not an unban line")
	// ErrBadLine is an unban line, or a line of unknown kind, that does
	// not have the exact shape the receiver writes.
	ErrBadLine = errors.New("unbanlog: malformed line")
)

// Parse parses one line of the received log (logline.Parse), without its
// newline. It returns ErrOtherKind for a line of another kind (ban,
// report, quorum), and ErrBadLine for a line the receiver does not write:
// too long, not printable ASCII, of no kind, or not in the exact,
// canonical form of logline, such as
//
//	STAMP banpush: unban ADDR peer=NAME[ jail=J][ time=T]
func Parse(line []byte) (Unban, error) {
	l, err := logline.Parse(line)
	switch {
	case err != nil:
		return Unban{}, ErrBadLine
	case l.Kind != logline.Unban:
		return Unban{}, ErrOtherKind
	}
	return Unban{Stamp: l.Time, Addr: l.Record.Addr, Peer: l.Peer, Jail: l.Record.Jail, Time: l.Record.Time}, nil
}

// AppendLine appends u as the receiver writes it, with its newline: the
// form Parse reads. It is for tests and tools that write unban lines.
func (u Unban) AppendLine(b []byte) []byte {
	return logline.Line{Kind: logline.Unban, Time: u.Stamp, Peer: u.Peer, Record: record.Record{Addr: u.Addr, Jail: u.Jail, Time: u.Time}}.Append(b)
}
