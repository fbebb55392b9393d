package main

import "testing"

// TestOneLine: a message printed to a terminal keeps to one line and
// carries no control character, whoever wrote the text in it.
func TestOneLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines\r\n", "two lines  "},
		{"a\ttab", "a tab"},
		{"/var/log/\x1b[2J\x1b]0;owned\x07x.log", "/var/log/?[2J?]0;owned?x.log"},
		{"del\x7f c1\u009b", "del? c1?"},
		{"café ünïcode", "café ünïcode"},
	} {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
