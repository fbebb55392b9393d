package f2b

import (
	"context"
	"net/netip"
	"testing"
)

func TestParseCount(t *testing.T) {
	tests := []struct {
		name, out string
		want      int
		ok        bool
	}{
		{name: "lifted", out: "1\n", want: 1, ok: true},
		{name: "not banned", out: "0\n", want: 0, ok: true},
		{name: "several", out: "12\n", want: 12, ok: true},
		{name: "empty", out: ""},
		{name: "negative", out: "-1\n"},
		{name: "text", out: "Sorry but the jail 'x' does not exist\n"},
		{name: "huge", out: "99999999999999999999\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseCount([]byte(tt.out))
			if (err == nil) != tt.ok || n != tt.want {
				t.Errorf("got %d, %v; want %d, ok=%v", n, err, tt.want, tt.ok)
			}
		})
	}
}

// TestUnbanRefuses: a zone or a bad jail never reaches fail2ban-client
// (the program named here does not exist).
func TestUnbanRefuses(t *testing.T) {
	c := &Client{Path: "/nonexistent/fail2ban-client"}
	for _, tt := range []struct {
		jail string
		addr netip.Addr
	}{
		{"banpush", netip.MustParseAddr("fe80::1%eth0")},
		{"banpush", netip.Addr{}},
		{"bad jail", netip.MustParseAddr("203.0.113.7")},
		{"--all", netip.MustParseAddr("203.0.113.7")},
	} {
		if _, err := c.Unban(context.Background(), tt.jail, tt.addr); err == nil || err.Error() == "" {
			t.Errorf("%q %v: got %v, want a refusal", tt.jail, tt.addr, err)
		} else if _, ok := err.(*Error); ok {
			t.Errorf("%q %v: fail2ban-client was run: %v", tt.jail, tt.addr, err)
		}
	}
}
