package roster

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestResolve: a HostName that does not resolve is an error naming
// the peer, and nothing else is lost. The context is done before any
// lookup, so no DNS query leaves this host.
func TestResolve(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	peers := []HostAddrs{{Peer: "web1", HostName: "192.0.2.10"}, {Peer: "web2", HostName: "web2.example"}}
	errs := Resolve(ctx, peers)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "peer web2: cannot resolve web2.example") {
		t.Errorf("got %v, want one error for web2", errs)
	}
	if !reflect.DeepEqual(peers[0].Addresses, []string{"192.0.2.10"}) {
		t.Errorf("web1: got %v", peers[0].Addresses)
	}
	got := IgnoreIP([]HostAddrs{{Addresses: []string{"127.0.0.5", "::1", "192.0.2.10"}}, {Addresses: []string{"192.0.2.10", "2001:db8::1"}}})
	if want := []string{"127.0.0.1/8", "::1", "192.0.2.10", "2001:db8::1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IgnoreIP = %v, want %v", got, want)
	}
}
