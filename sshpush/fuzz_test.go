package sshpush

import (
	"strings"
	"testing"
)

// FuzzParseReply feeds the reply parser arbitrary receiver output: it must
// not panic, and what it accepts must be a single banpush-v1 ok line whose
// fields are printable words.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"banpush-v1 ok peer=a version=1.2\n",
		"banpush-v1 ok accepted=10 refused=2\n",
		"banpush-v1 ok\n",
		"banpush-v1 ok a=1 a=2\n",
		"sh: 1: banpush-v1: not found\n",
		"banpush-v1 ok a=\xff\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		fields, ok := parseReply(out)
		if !ok {
			return
		}
		line := strings.TrimSuffix(string(out), "\n")
		if !strings.HasPrefix(line, "banpush-v1 ok") || strings.Contains(line, "\n") {
			t.Fatalf("accepted %q", out)
		}
		n := 0
		for k, v := range fields {
			if !isKey([]byte(k)) || !isValue([]byte(v)) || !strings.Contains(line, " "+k+"="+v) {
				t.Fatalf("accepted %q with field %q=%q", out, k, v)
			}
			n += len(k) + len(v) + 2
		}
		if n+len("banpush-v1 ok") != len(line) {
			t.Fatalf("accepted %q but its fields do not cover it", out)
		}
	})
}

// FuzzCleanOutput checks that whatever the receiver writes on stderr comes
// out as printable ASCII lines.
func FuzzCleanOutput(f *testing.F) {
	f.Add([]byte("banpush: line 2: refused: loopback address\n"))
	f.Add([]byte("\x1b[31m\r\n\x00\xff\t x \n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := cleanOutput(b)
		for _, line := range strings.Split(s, "\n") {
			if s != "" && (line == "" || strings.TrimSpace(line) != line) {
				t.Fatalf("cleanOutput(%q) = %q: blank or padded line", b, s)
			}
			if printable(line) != line {
				t.Fatalf("cleanOutput(%q) = %q: not printable", b, s)
			}
		}
		if len(s) > len(b) {
			t.Fatalf("cleanOutput(%q) = %q: longer than its input", b, s)
		}
	})
}
