package record

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts has a canonical
// text form that is printable, no longer than the input allows, and parses
// back to the same record.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7",
		"203.0.113.7 jail=sshd time=1700000000 bantime=600",
		"2001:db8::1 bantime=-1",
		"::ffff:203.0.113.7 jail=a.b_c-d",
		"fe80::1%eth0",
		"203.0.113.0/24",
		"203.0.113.7 jail=a jail=b",
		"203.0.113.7 time=01",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Parse(line)
		if err != nil {
			if _, ok := err.(Refusal); !ok {
				t.Fatalf("error %T is not a Refusal", err)
			}
			if bytes.Contains([]byte(err.Error()), line) && len(line) > 3 {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if !r.Addr.IsValid() || r.Addr.Zone() != "" || r.Addr.Is4In6() {
			t.Fatalf("accepted address %v is not canonical", r.Addr)
		}
		text := r.AppendText(nil)
		for _, c := range text {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("canonical form %q not printable", text)
			}
		}
		r2, err := Parse(text)
		if err != nil || r2 != r {
			t.Fatalf("round trip of %q: got %v, %v; want %v", text, r2, err, r)
		}
	})
}
