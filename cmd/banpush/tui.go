package main

// Output rules for the banpush command. Every file in this package keeps
// them:
//
//   - Data goes to stdout, and nothing else does: a list, a report, the
//     authorized_keys line, the receiver's answer line (package wire).
//   - Every message goes to stderr, one line each, prefixed with "banpush: ".
//   - An error is "banpush: error: ..."; it may be followed by
//     "banpush: hint: ..." telling the user what to do next.
//   - A warning is "banpush: warning: ..."; processing goes on.
//   - A note is "banpush: note: ...": what a command did besides its data.
//   - The one exception to the prefix is a question asked of a person
//     (peers trust: "Add this key to FILE? [y/N]"), also on stderr.
//   - The receiver's stderr travels back to the pushing peer over SSH: it
//     never contains anything that peer sent, only line numbers and fixed
//     reasons.
//   - Library packages never print; they return errors, and this package
//     turns them into messages and exit codes (exit.go).

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// userError is an error with a hint and an exit code, made by this package.
type userError struct {
	err  error
	hint string
	code int
}

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// errorf makes an error that exits with code and prints hint after it.
func errorf(code int, hint, format string, args ...any) error {
	return &userError{err: fmt.Errorf(format, args...), hint: hint, code: code}
}

// withHint wraps err so that hint is printed after it, keeping its code.
func withHint(err error, code int, hint string) error {
	if err == nil {
		return nil
	}
	return &userError{err: err, hint: hint, code: code}
}

// silentExit ends a command with a code after it has printed its own report.
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "banpush: error: %s\n", oneLine(err.Error()))
}

func printHint(w io.Writer, hint string) {
	fmt.Fprintf(w, "banpush: hint: %s\n", oneLine(hint))
}

func printWarning(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "banpush: warning: %s\n", oneLine(fmt.Sprintf(format, args...)))
}

// printNote prints an informational message: "banpush: note: ...".
func printNote(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "banpush: note: %s\n", oneLine(fmt.Sprintf(format, args...)))
}

// report prints err with its hint and returns the exit code for it.
func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var s silentExit
	if errors.As(err, &s) {
		return int(s)
	}
	printError(w, err)
	var u *userError
	if errors.As(err, &u) {
		if u.hint != "" {
			printHint(w, u.hint)
		}
		return u.code
	}
	return exitFailure
}

// oneLine keeps a message on one line, whatever an error wrapped into it,
// and makes every other control character a '?': what it prints may come
// from a file another account wrote (a path in authorized_keys), and no
// escape sequence of theirs reaches the terminal.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '?'
		}
		return r
	}, s)
}

// plural is "1 ban", "2 bans".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
