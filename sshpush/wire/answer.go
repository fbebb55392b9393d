package wire

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/banpush/banpush/sshpush/record"
)

// OK starts every answer line a receiver writes on stdout:
//
//	banpush-v1 ok KEY=VALUE...
//
// Keys are lowercase words, values printable ASCII without spaces; fields
// are separated by one space and appear once. Parsers keep unknown keys, so
// that a newer receiver may add some.
const OK = Version + " ok"

// maxFields bounds the fields of an answer line.
const maxFields = 16

// ErrMalformed is returned for an answer that is not one well-formed line
// of the expected kind.
var ErrMalformed = errors.New("malformed answer")

// Answer is the receiver's answer to one batch:
//
//	banpush-v1 ok accepted=N refused=M [limited=L limited_from=K]
//
// Accepted records were written to the receiver's log and synced; Refused
// ones were not (their reasons are on stderr). When the pushing peer's rate
// limit ran out, Limited counts the records refused for it (they are in
// Refused too) and LimitedFrom is the line (from 1) of the first: a sender
// keeps that record and the ones after it queued, and sends them again
// later.
type Answer struct {
	Accepted, Refused    int
	Limited, LimitedFrom int
}

// AppendTo appends the answer line, without a newline, to b.
func (a Answer) AppendTo(b []byte) []byte {
	b = append(b, OK...)
	b = append(b, " accepted="...)
	b = strconv.AppendInt(b, int64(a.Accepted), 10)
	b = append(b, " refused="...)
	b = strconv.AppendInt(b, int64(a.Refused), 10)
	if a.Limited > 0 {
		b = append(b, " limited="...)
		b = strconv.AppendInt(b, int64(a.Limited), 10)
		b = append(b, " limited_from="...)
		b = strconv.AppendInt(b, int64(a.LimitedFrom), 10)
	}
	return b
}

// String returns the answer line without a newline.
func (a Answer) String() string { return string(a.AppendTo(nil)) }

// ParseAnswer parses the answer to a batch of records records: one line
// (the newline may be missing). An answer that does not account for exactly
// those records, or whose limited fields fall outside the batch, is
// malformed: a sender must not move its queue on it.
func ParseAnswer(line []byte, records int) (Answer, error) {
	f, ok := parseFields(line)
	if !ok {
		return Answer{}, ErrMalformed
	}
	var a Answer
	var ok1, ok2 bool
	a.Accepted, ok1 = count(f["accepted"])
	a.Refused, ok2 = count(f["refused"])
	if !ok1 || !ok2 {
		return Answer{}, ErrMalformed
	}
	if f["limited"] != "" {
		var ok3, ok4 bool
		a.Limited, ok3 = count(f["limited"])
		a.LimitedFrom, ok4 = count(f["limited_from"])
		if !ok3 || !ok4 || a.Limited > a.Refused || a.LimitedFrom < 1 || a.LimitedFrom > records {
			return Answer{}, ErrMalformed
		}
	}
	if a.Accepted+a.Refused != records {
		return Answer{}, ErrMalformed
	}
	return a, nil
}

// PingAnswer is the receiver's answer to a ping:
//
//	banpush-v1 ok peer=NAME version=VERSION
//
// Peer is the name the receiver was installed with for this key (its
// --peer), Version the receiver's banpush version.
type PingAnswer struct {
	Peer, Version string
}

// maxVersion bounds the version in a ping answer.
const maxVersion = 64

// ErrPeerName is returned by PingAnswer.Marshal for a peer name that
// record.ValidName refuses.
var ErrPeerName = errors.New("wire: invalid peer name")

// Marshal returns the answer line without a newline. The version is reduced
// to characters that are safe on the wire and in logs (CleanVersion); a
// peer name that is not valid is an error, never written.
func (p PingAnswer) Marshal() ([]byte, error) {
	if !record.ValidName(p.Peer) {
		return nil, ErrPeerName
	}
	b := append([]byte(OK), " peer="...)
	b = append(b, p.Peer...)
	b = append(b, " version="...)
	return append(b, CleanVersion(p.Version)...), nil
}

// ParsePing parses the answer to a ping.
func ParsePing(line []byte) (PingAnswer, error) {
	f, ok := parseFields(line)
	if !ok {
		return PingAnswer{}, ErrMalformed
	}
	p := PingAnswer{Peer: f["peer"], Version: f["version"]}
	if !record.ValidName(p.Peer) || p.Version == "" || len(p.Version) > maxVersion {
		return PingAnswer{}, ErrMalformed
	}
	return p, nil
}

// CleanVersion restricts a version to at most 64 characters from
// [A-Za-z0-9._+-], replacing any other with '_'; empty becomes "unknown".
func CleanVersion(v string) string {
	if v == "" {
		return "unknown"
	}
	b := []byte(v)
	if len(b) > maxVersion {
		b = b[:maxVersion]
	}
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-', c == '+':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// IsBanpush reports whether a receiver's output is banpush's: stdout starts
// like an answer line, or a line of stderr like one of banpush's messages
// (the account's shell may have written lines of its own before banpush
// ran: a profile, an rc file). Anything else came from another program (a
// shell without banpush, a different forced command).
func IsBanpush(stdout, stderr []byte) bool {
	return bytes.HasPrefix(stdout, []byte(Version+" ")) || Message(stderr) != nil
}

// Message returns the first line of stderr that is one of banpush's
// messages, without its newline, or nil.
func Message(stderr []byte) []byte {
	for line := range bytes.Lines(stderr) {
		if bytes.HasPrefix(line, []byte(stderrPrefix)) {
			return bytes.TrimSuffix(line, []byte{'\n'})
		}
	}
	return nil
}

// parseFields parses one answer line "banpush-v1 ok KEY=VALUE..." (the
// newline may be missing) into its fields.
func parseFields(out []byte) (map[string]string, bool) {
	line, ok := bytes.CutSuffix(out, []byte("\n"))
	if !ok && len(line) == 0 {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(line, []byte(OK))
	if !ok {
		return nil, false
	}
	f := make(map[string]string)
	for len(rest) > 0 {
		if rest[0] != ' ' || len(f) == maxFields {
			return nil, false
		}
		rest = rest[1:]
		field := rest
		if i := bytes.IndexByte(rest, ' '); i >= 0 {
			field, rest = rest[:i], rest[i:]
		} else {
			rest = nil
		}
		k, v, ok := bytes.Cut(field, []byte("="))
		if !ok || !isKey(k) || !isValue(v) {
			return nil, false
		}
		if _, dup := f[string(k)]; dup {
			return nil, false
		}
		f[string(k)] = string(v)
	}
	return f, true
}

func isKey(b []byte) bool {
	if len(b) == 0 || len(b) > 32 {
		return false
	}
	for _, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isValue(b []byte) bool {
	if len(b) == 0 || len(b) > 256 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// count parses a non-negative decimal count without sign or leading zeros.
func count(s string) (int, bool) {
	if s == "" || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, false
	}
	return n, true
}
