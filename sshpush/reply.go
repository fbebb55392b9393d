package sshpush

import (
	"bytes"
	"strconv"
)

// maxFields bounds the fields of a reply line.
const maxFields = 16

// parseReply parses the receiver's stdout, which must be exactly one line
// "banpush-v1 ok KEY=VALUE..." (the newline may be missing). Keys are
// lowercase words, values printable ASCII without spaces; fields are
// separated by one space and appear once. Unknown keys are kept, so that a
// newer receiver may add some.
func parseReply(out []byte) (map[string]string, bool) {
	line, ok := bytes.CutSuffix(out, []byte("\n"))
	if !ok && len(line) == 0 {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(line, []byte(replyPrefix+"ok"))
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
