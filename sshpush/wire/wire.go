// Package wire is banpush's protocol, version 1, in one place: the request
// words a pusher sends in SSH_ORIGINAL_COMMAND, the framing of the records
// of a "ban" request and of a "stream", the answer line a receiver writes
// on stdout (its writer and its parser), the refusal lines it writes on
// stderr, and the receiver's exit statuses with what each means for a
// sender.
//
// A conversation, as a pusher sees it:
//
//	request (SSH_ORIGINAL_COMMAND)   stdin                       stdout
//	banpush-v1 ping                  -                           banpush-v1 ok peer=NAME version=V
//	banpush-v1 ban                   records, one a line         banpush-v1 ok accepted=N refused=M [limited=L limited_from=K]
//	banpush-v1 stream                batches, each + empty line  one answer line per batch
//	banpush-v1 unban                 records, one a line         banpush-v1 ok accepted=N refused=M [limited=L limited_from=K]
//	banpush-v1 fail                  records, one a line         banpush-v1 ok accepted=N refused=M [limited=L limited_from=K]
//
// Records are the grammar of package record, each ending with a newline.
// An unban request asks the receiver to lift the bans of its records'
// addresses; a receiver refuses each of them unless the pushing key is
// authorized for unbans, and one older than the request exits 64 (TooOld).
// A fail request reports failures the sender's fail2ban saw (each record
// with failures=N, how many, and time=T, the last): the receiver counts
// them with every other host's (fleet detection), and refuses them unless
// the pushing key's line turns the fleet policy on.
// The receiver's exit status says what to do with a request that got no
// answer (see VerdictOf). A receiver that cannot write its log answers
// every request with exit 73 and no answer line, a ping included: a check
// finds it before a batch does.
//
// What it trusts: nothing it parses. ParseRequest accepts only the exact
// request words; the batch readers are bounded by MaxRecords and
// MaxBatchBytes; ParseAnswer and ParsePing accept one line of a fixed shape
// with bounded fields and check that an answer accounts for exactly the
// records sent. Its writers only ever produce what its parsers accept.
package wire

import (
	"errors"
	"strings"
)

// Version starts every request word and every answer line.
const Version = "banpush-v1"

// Request is a request of protocol version 1.
type Request int

// The requests. The zero Request is none.
const (
	Ping   Request = iota + 1 // is a banpush receiver there, and which
	Ban                       // one batch of records on stdin
	Stream                    // many batches on one session
	Unban                     // one batch of records whose bans to lift
	Fail                      // one batch of failure reports
)

var words = [...]string{Ping: Version + " ping", Ban: Version + " ban", Stream: Version + " stream", Unban: Version + " unban", Fail: Version + " fail"}

// String returns the request word, exactly as it is sent.
func (r Request) String() string {
	if r < Ping || r > Fail {
		return "unknown request"
	}
	return words[r]
}

// Requests lists every request, in order.
func Requests() []Request { return []Request{Ping, Ban, Stream, Unban, Fail} }

// Errors of ParseRequest.
var (
	// ErrNoRequest: SSH_ORIGINAL_COMMAND unset or empty.
	ErrNoRequest = errors.New("no request: this command runs as an authorized_keys forced command")
	// ErrUnknownRequest: anything but the request words.
	ErrUnknownRequest = errors.New("unknown request (expected " + quotedWords() + ")")
)

func quotedWords() string {
	q := make([]string, 0, len(words))
	for _, r := range Requests() {
		q = append(q, `"`+r.String()+`"`)
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// ParseRequest parses SSH_ORIGINAL_COMMAND. Only the exact request words
// are accepted: no trimming, no case folding, no arguments.
func ParseRequest(cmd string) (Request, error) {
	if cmd == "" {
		return 0, ErrNoRequest
	}
	for _, r := range Requests() {
		if cmd == words[r] {
			return r, nil
		}
	}
	return 0, ErrUnknownRequest
}
