package wire

import (
	"strconv"

	"github.com/banpush/banpush/sshpush/record"
)

// The receiver's exit statuses. They follow sysexits.h, so that a sender
// can tell "fix the request" from "try again later"; see VerdictOf.
const (
	ExitOK          = 0   // the request was handled; stdout holds the answer
	ExitRequest     = 64  // EX_USAGE: unknown or missing request word
	ExitData        = 65  // EX_DATAERR: the batch was refused whole (too large, too slow to arrive)
	ExitCannotWrite = 73  // EX_CANTCREAT: the receiver cannot write its log or a file beside it; nothing written
	ExitTemp        = 75  // EX_TEMPFAIL: the log was busy; nothing written
	ExitConfig      = 78  // EX_CONFIG: the receiver's arguments (in authorized_keys) are wrong
	ExitNoCommand   = 127 // not banpush's: the account's shell found no such command
)

// Verdict is what a receiver's exit status means for the sender.
type Verdict int

// The verdicts.
const (
	Answered    Verdict = iota // exit 0: read the answer on stdout
	RetryLater                 // the same request may succeed later unchanged: keep the records queued
	Refused                    // the receiver refused the request; only a person can fix it
	TooOld                     // the receiver does not know this request: it predates it
	NotBanpush                 // no banpush receiver answered
	Failed                     // the receiver failed in a way it does not describe
	CannotWrite                // the receiver cannot write its log: keep the records queued; only a person on the receiving host can fix it
)

var verdictNames = [...]string{Answered: "answered", RetryLater: "retry later", Refused: "refused",
	TooOld: "receiver too old", NotBanpush: "not banpush", Failed: "failed", CannotWrite: "cannot write"}

func (v Verdict) String() string {
	if v < Answered || v > CannotWrite {
		return "verdict " + strconv.Itoa(int(v))
	}
	return verdictNames[v]
}

// VerdictOf says what a receiver's exit status means. Exit 64 answers a
// request word the receiver does not know: from a banpush receiver, one
// older than the request (it is never sent for a request it knows).
//
// Exit 73 is newer than the other statuses: receivers before it exited 75
// when they could not write their log, and a sender before it reads 73 as
// Failed, which keeps the records queued too. A receiver answers a ping
// with it as well, so that a check finds the log it cannot write.
func VerdictOf(status int) Verdict {
	switch status {
	case ExitOK:
		return Answered
	case ExitCannotWrite:
		return CannotWrite
	case ExitTemp:
		return RetryLater
	case ExitData, ExitConfig:
		return Refused
	case ExitRequest:
		return TooOld
	case ExitNoCommand:
		return NotBanpush
	}
	return Failed
}

// stderrPrefix starts every line a banpush receiver writes on stderr.
const stderrPrefix = "banpush"

// AppendRefusal appends the stderr line for a refused record to b:
//
//	banpush: line K: refused: REASON
//
// The reason is one of record's fixed texts: never what the peer sent.
func AppendRefusal(b []byte, line int, reason record.Refusal) []byte {
	b = append(b, stderrPrefix+": line "...)
	b = strconv.AppendInt(b, int64(line), 10)
	b = append(b, ": refused: "...)
	b = append(b, reason...)
	return append(b, '\n')
}

// AppendNotShown appends the stderr line that stands for n refusal lines
// left out.
func AppendNotShown(b []byte, n int) []byte {
	b = append(b, stderrPrefix+": "...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, " more refused lines not shown\n"...)
}
