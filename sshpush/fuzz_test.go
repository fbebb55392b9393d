package sshpush

import (
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

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
			if record.Printable(line) != line {
				t.Fatalf("cleanOutput(%q) = %q: not printable", b, s)
			}
		}
		if len(s) > len(b) {
			t.Fatalf("cleanOutput(%q) = %q: longer than its input", b, s)
		}
	})
}
