package roster

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/banpush/banpush/inventory"
)

func TestFindSelf(t *testing.T) {
	inv, err := inventory.Parse("peers", strings.NewReader("Host h1\n  HostName 192.0.2.1\nHost h2\n  HostName 192.0.2.2\nHost h3\n  HostName web3.example\nHost lo\n  HostName 127.0.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	hostNames := map[string]string{"h1": "192.0.2.1", "h2": "192.0.2.2", "h3": "web3.example", "lo": "127.0.0.1"}
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")}
	tests := []struct {
		name  string
		self  string
		local []netip.Addr
		want  []Self
	}{
		{"named by --self", "h1", local, []Self{{"h1", "named by --self (BANPUSH_SELF)"}}},
		{"the name wins over an address", "h3", local, []Self{{"h3", "named by --self (BANPUSH_SELF)"}}},
		{"by address, --self naming no peer", "nosuch", local, []Self{{"h2", "its HostName 192.0.2.2 is an address of this host"}}},
		{"loopback is never this host", "nosuch", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil},
		{"no match", "nosuch", []netip.Addr{netip.MustParseAddr("198.51.100.1")}, nil},
	}
	if _, ok := inv.Peer(short); !ok {
		tests = append(tests, struct {
			name  string
			self  string
			local []netip.Addr
			want  []Self
		}{"short hostname names no peer: by address", "", local, []Self{{"h2", "its HostName 192.0.2.2 is an address of this host"}}})
	}
	for _, tt := range tests {
		if got := FindSelf(inv, tt.self, hostNames, func() []netip.Addr { return tt.local }); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// The short hostname, when a peer has it.
	named, err := inventory.Parse("peers", strings.NewReader("Host "+short+"\n  HostName 192.0.2.9\n"))
	if err != nil {
		t.Skipf("this host's short hostname %q is not a peer name", short)
	}
	want := []Self{{short, "this host's short hostname"}}
	asked := false
	noAddrs := func() []netip.Addr { asked = true; return nil }
	if got := FindSelf(named, "", nil, noAddrs); !reflect.DeepEqual(got, want) || asked {
		t.Errorf("short hostname: got %+v (addresses asked: %v), want %+v without asking for addresses", got, asked, want)
	}
}
