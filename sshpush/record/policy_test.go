package record

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	pol := Policy{
		Ignore: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		Peers:  []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("2001:db8:10::/48")},
		Local:  []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		Remote: netip.MustParseAddr("203.0.113.2"),
	}
	tests := []struct {
		addr string
		want error
	}{
		{"203.0.113.7", nil},
		{"2001:db8::7", nil},
		{"192.0.2.7", nil}, // documentation ranges stay allowed
		{"3fff::7", nil},
		{"8.8.8.8", nil},

		// IPv4-compatible IPv6 (deprecated): refused, whatever it embeds.
		{"::127.0.0.1", ErrIPv4Compat},
		{"::8.8.8.8", ErrIPv4Compat},
		{"::7f00:1", ErrIPv4Compat},

		// NAT64 and 6to4: checked as the IPv4 address they carry.
		{"64:ff9b::8.8.8.8", nil},
		{"64:ff9b::127.0.0.1", ErrLoopback},
		{"64:ff9b::10.0.0.1", ErrPrivate},
		{"64:ff9b::198.51.100.5", ErrIgnored},
		{"64:ff9b::203.0.113.1", ErrLocal},
		{"64:ff9b::203.0.113.2", ErrRemote},
		{"64:ff9b::203.0.113.10", ErrPeer},
		{"2002:808:808::1", nil},
		{"2002:7f00:1::1", ErrLoopback},
		{"2002:c0a8:101::1", ErrPrivate},
		{"2002:cb00:7101::1", ErrLocal},
		{"2002:cb00:7102::9", ErrRemote},
		{"2002:c633:6405::1", ErrIgnored},
		{"2002:6440:1::1", ErrCGNAT},
		{"2002:e000:1::1", ErrMulticast},

		// Special-purpose ranges that are not globally reachable.
		{"100::1", ErrNotGlobal},
		{"192.0.0.9", ErrNotGlobal},
		{"198.18.0.1", ErrNotGlobal},
		{"198.19.255.254", ErrNotGlobal},
		{"64:ff9b:1::1", ErrNotGlobal},
		{"2001:2::1", ErrNotGlobal},
		{"5f00::1", ErrNotGlobal},

		// The fleet's own hosts.
		{"203.0.113.10", ErrPeer},
		{"2001:db8:10::5", ErrPeer},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.addr)
		if err != nil {
			t.Fatalf("%s: %v", tt.addr, err)
		}
		if got := pol.Check(a); !errors.Is(got, tt.want) && !(got == nil && tt.want == nil) {
			t.Errorf("Check(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	allow := Policy{AllowPrivate: true}
	for _, s := range []string{"64:ff9b::10.0.0.1", "2002:a00:1::1"} {
		if err := allow.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("with AllowPrivate, Check(%s) = %v, want nil", s, err)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"web1 peer=x", "web1 peer=x"},
		{"a\nb\rc\x00d\x1b[31m", "a?b?c?d?[31m"},
		{"w\u00e9b", "w?b"},
		{"\xff\xfe", "??"},
		{"~\x7f", "~?"},
	} {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
