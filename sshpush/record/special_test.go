package record

import (
	"errors"
	"net/netip"
	"testing"
)

// TestPolicySpecialIPv6: the IPv6 forms of issue 25 finding 7. The SIIT
// (IPv4-translated) form and every other space outside 2000::/3 is
// reserved; Teredo is checked as its client's IPv4 address (the last 32
// bits, inverted); 2001::/23 is not globally reachable outside the
// sub-allocations the IANA registry marks so.
func TestPolicySpecialIPv6(t *testing.T) {
	pol := Policy{
		Peers:  []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")},
		Local:  []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		Ignore: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}
	tests := []struct {
		name string
		addr string
		want error
	}{
		// SIIT, RFC 2765: ::ffff:0:a.b.c.d.
		{"SIIT loopback", "::ffff:0:7f00:1", ErrReserved},
		{"SIIT of a peer", "::ffff:0:cb00:7107", ErrReserved},
		{"SIIT of a public address", "::ffff:0:808:808", ErrReserved},
		{"SIIT dotted", "::ffff:0:8.8.8.8", ErrReserved},

		// Teredo, RFC 4380: 2001:0:SERVER:FLAGS:PORT:~CLIENT.
		{"Teredo, public client", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", nil}, // client 8.8.8.8
		{"Teredo, loopback client", "2001:0:4136:e378:8000:63bf:80ff:fffe", ErrLoopback},
		{"Teredo, the peer as client", "2001:0:4136:e378:8000:63bf:34ff:8ef8", ErrPeer},
		{"Teredo, this host as client", "2001:0:4136:e378:8000:63bf:34ff:8efe", ErrLocal},
		{"Teredo, private client", "2001::f5ff:fffe", ErrPrivate},                 // 10.0.0.1
		{"Teredo, ignored client", "2001::39cc:9bfa", ErrIgnored},                 // 198.51.100.5
		{"Teredo, CGNAT client", "2001::9bbf:fffe", ErrCGNAT},                     // 100.64.0.1
		{"Teredo, unspecified client", "2001::ffff:ffff", ErrUnspecified},         // 0.0.0.0
		{"Teredo, broadcast client", "2001::", ErrBroadcast},                      // 255.255.255.255
		{"Teredo, multicast client", "2001:0:4136:e378::1fff:fffe", ErrMulticast}, // 224.0.0.1

		// IETF protocol assignments, RFC 2928.
		{"2001::/23 outside its allocations", "2001:100::1", ErrNotGlobal},
		{"2001::/23, its end", "2001:1ff:ffff::1", ErrNotGlobal},
		{"2001:1::/32 outside the anycast ones", "2001:1::4", ErrNotGlobal},
		{"deprecated ORCHID", "2001:10::1", ErrNotGlobal},
		{"benchmarking", "2001:2::1", ErrNotGlobal},
		{"PCP anycast", "2001:1::1", nil},
		{"TURN anycast", "2001:1::2", nil},
		{"DNS-SD SRP anycast", "2001:1::3", nil},
		{"AMT", "2001:3::1", nil},
		{"AS112-v6", "2001:4:112::1", nil},
		{"ORCHIDv2", "2001:2f::1", nil},
		{"drone remote ID", "2001:30::1", nil},
		{"just past 2001::/23", "2001:200::1", nil},

		// Outside 2000::/3: reserved by the IETF.
		{"::/8 other than the forms above", "::1:0:0:1", ErrReserved},
		{"100::/8 past the discard prefix", "100:0:0:1::1", ErrReserved},
		{"4000::/3", "4000::1", ErrReserved},
		{"e000::/4", "e000::1", ErrReserved},
		{"fe00::/9", "fe00::1", ErrReserved},

		// Unchanged.
		{"global unicast", "2a00:1450::1", nil},
		{"documentation", "2001:db8::1", nil},
		{"NAT64 public", "64:ff9b::808:808", nil},
		{"ULA", "fd00::1", ErrPrivate},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.addr)
		if err != nil {
			t.Fatalf("%s: %v", tt.addr, err)
		}
		got := pol.Check(a)
		if !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("%s: Check(%s) = %v, want %v", tt.name, tt.addr, got, tt.want)
		}
	}
	allow := Policy{AllowPrivate: true}
	for _, s := range []string{"fd00::1", "2001::f5ff:fffe"} {
		if err := allow.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("with AllowPrivate, Check(%s) = %v, want nil", s, err)
		}
	}
}
