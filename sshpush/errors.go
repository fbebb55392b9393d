package sshpush

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/banpush/banpush/sshpush/record"

	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/crypto/ssh"
)

// Class says what kind of failure an error is, in words an administrator
// and a script can both use. The values are part of banpush's interface
// (status output, JSON).
type Class string

// The classes. Retryable says which ones a sender retries.
const (
	ClassOK             Class = "ok"
	ClassUnreachable    Class = "unreachable"           // TCP failed, or the connection closed or reset (also sshd's MaxStartups drops)
	ClassTimeout        Class = "timeout"               // a connect, handshake or session deadline passed, or the context ended
	ClassAuth           Class = "auth"                  // the server accepted none of the keys offered
	ClassHostKeyUnknown Class = "hostkey-unknown"       // known_hosts has no entry for the host
	ClassHostKeyChanged Class = "hostkey-changed"       // known_hosts has entries for the host and the server's key is not one of them (or is @revoked)
	ClassHostCertCA     Class = "hostcert-unknown-ca"   // the host certificate's CA is not in an @cert-authority line for the host
	ClassHostCertTime   Class = "hostcert-expired"      // the host certificate has expired, or is not valid yet
	ClassHostCertHost   Class = "hostcert-wrong-host"   // the host certificate does not name the host (its HostKeyAlias, or HostName)
	ClassNotBanpush     Class = "not-banpush"           // logged in, but no banpush receiver answered (a plain shell account, exit 127)
	ClassRejected       Class = "rejected"              // the receiver refused the request: exit 64, 65 (batch too large) or 78
	ClassBusy           Class = "busy"                  // the receiver asked to try again later: exit 75
	ClassCannotWrite    Class = "receiver-cannot-write" // the receiver cannot write its log or a file beside it: exit 73; a person must fix the receiving host
	ClassTooOld         Class = "receiver-too-old"      // the receiver does not know the request (exit 64 to an unban): upgrade it
	ClassReceiverError  Class = "receiver-error"        // the receiver failed otherwise (exit 70, a signal, a malformed reply)
	ClassConfig         Class = "config"                // the Target or a known_hosts file cannot be used
	ClassOther          Class = "error"                 // ClassOf for errors that do not come from this package
)

// Error is the error returned by Dial, FetchHostKey, Ping and Ban.
type Error struct {
	Peer  string // Target.Name, or HostName when Name is empty
	Class Class
	Err   error // what happened, for Unwrap; its text may come partly from the server

	// For the host key and host certificate classes: the key the server
	// presented (a *ssh.Certificate for a host certificate).
	HostKey ssh.PublicKey
	// Revoked is set, with ClassHostKeyChanged, when the host key, or
	// the key or CA of its certificate, is @revoked in known_hosts.
	Revoked bool

	// After a request ran: the receiver's exit status (0 if it exited 0 or
	// sent none) and its stderr, reduced to printable ASCII lines and
	// bounded, for reports.
	ExitStatus int
	Stderr     string
}

// maxErrorLen bounds Error's text; maxErrorStderr bounds the part of it
// quoted from the receiver's stderr.
const (
	maxErrorLen    = 1024
	maxErrorStderr = 200
)

// Error returns one line of printable ASCII: the peer, what failed, and
// the receiver's first message on stderr (or its first line, when none is
// banpush's).
func (e *Error) Error() string {
	prefix := "sshpush: peer " + record.Printable(e.Peer) + ": "
	return prefix + e.reason(max(maxErrorLen-len(prefix), 0))
}

func (e *Error) Unwrap() error { return e.Err }

// Reason is Error's text without the "sshpush: peer NAME: " it starts
// with, for messages and reports that name the peer already: what failed,
// and what the receiver said, in printable ASCII and at most maxErrorLen
// bytes (and "...").
func (e *Error) Reason() string { return e.reason(maxErrorLen) }

// reason is Reason cut at limit bytes (and "...").
func (e *Error) reason(limit int) string {
	var b strings.Builder
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(string(e.Class))
	}
	line := string(wire.Message([]byte(e.Stderr)))
	if line == "" {
		line = firstLine(e.Stderr)
	}
	if line != "" {
		if len(line) > maxErrorStderr {
			line = line[:maxErrorStderr] + "..."
		}
		b.WriteString(": receiver said: ")
		b.WriteString(strconv.Quote(line))
	}
	s := record.Printable(b.String())
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

// Reason returns err's text, without the peer's name when err is an
// *Error: "peer web2: unreachable: ..." rather than "peer web2: sshpush:
// peer web2: unreachable: ...".
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Error() == err.Error() {
		return e.Reason()
	}
	return err.Error()
}

// Retryable reports whether the same request may succeed later without
// anyone changing anything: unreachable, timeout and busy are; auth,
// host key, not-banpush, rejected, cannot-write, receiver and
// configuration errors are not. A connection closed or reset during the handshake - what sshd does
// past MaxStartups - is ClassUnreachable, so it is retryable.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassUnreachable, ClassTimeout, ClassBusy:
		return true
	}
	return false
}

// ClassOf returns the Class of err: ClassOK for nil, the Class of an
// *Error in its chain, ClassTimeout for a context error, ClassOther for
// anything else.
func ClassOf(err error) Class {
	if err == nil {
		return ClassOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ClassTimeout
	}
	return ClassOther
}

// classifyNet classifies an error from dialing or from the connection
// before authentication.
func classifyNet(err error) Class {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	}
	return ClassUnreachable
}

// closedEarly reports whether err means the server closed or reset the
// connection, which is how sshd drops connections past MaxStartups.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// authFailed reports whether a handshake error is an authentication
// failure. x/crypto/ssh has no typed error for it, only this text; sshd's
// MaxAuthTries disconnect is one too.
func authFailed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "ssh: unable to authenticate") ||
		strings.Contains(s, "Too many authentication failures")
}

// cleanOutput turns bytes from the receiver into lines of printable ASCII:
// CR and other control bytes and every non-ASCII byte become '?', empty
// lines are dropped, and the result ends without a newline.
func cleanOutput(b []byte) string {
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		var l strings.Builder
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case c == '\t':
				l.WriteByte(' ')
			case c < ' ' || c > '~':
				l.WriteByte('?')
			default:
				l.WriteByte(c)
			}
		}
		if s := strings.TrimSpace(l.String()); s != "" {
			if out.Len() > 0 {
				out.WriteByte('\n')
			}
			out.WriteString(s)
		}
	}
	return out.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func newError(peer string, class Class, format string, args ...any) *Error {
	return &Error{Peer: peer, Class: class, Err: fmt.Errorf(format, args...)}
}
