package authkeys

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  bool
	}{
		{name: "plain", in: "/usr/local/bin/banpush receive --peer web1 --log /var/log/banpush/received.log", want: []string{"/usr/local/bin/banpush", "receive", "--peer", "web1", "--log", "/var/log/banpush/received.log"}},
		{name: "single quotes", in: `/bin/banpush receive --log '/var/log/my log' --ignore 'a'\''b'`, want: []string{"/bin/banpush", "receive", "--log", "/var/log/my log", "--ignore", "a'b"}},
		{name: "double quotes", in: `x "a b" "c\"d"`, want: []string{"x", "a b", `c"d`}},
		{name: "extra spaces", in: "  a   b  ", want: []string{"a", "b"}},
		{name: "empty quotes", in: "a ''", want: []string{"a", ""}},
		{name: "expansion", in: "a $HOME", err: true},
		{name: "expansion in double quotes", in: `a "$(id)"`, err: true},
		{name: "operator", in: "a; reboot", err: true},
		{name: "pipe", in: "a | b", err: true},
		{name: "unterminated", in: "a 'b", err: true},
		{name: "glob", in: "a *", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitCommand(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzSplitCommand: splitting never panics, and a command made only of
// words the split returned, each quoted as authorize quotes it, splits
// back to the same words.
func FuzzSplitCommand(f *testing.F) {
	f.Add(`/usr/local/bin/banpush receive --peer web1 --log '/var/log/a b'`)
	f.Add(`a "b\"c" 'd'\''e'`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err != nil {
			return
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := SplitCommand(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) && len(words) > 0 {
			t.Fatalf("%q -> %q -> %q (%v)", s, words, again, err)
		}
	})
}
