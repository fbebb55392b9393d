package main

import (
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/banpush/banpush/inventory"
)

// selfPeer is the peer of the inventory that is this host: one inventory
// can then be copied to every host of a fleet, and each sends to the
// others only. Its JSON keys are stable.
type selfPeer struct {
	Name   string `json:"peer"`
	Reason string `json:"reason"`
}

// selfName is the name this host goes by: --self (BANPUSH_SELF), or the
// short hostname, and how it was chosen.
func selfName(g *Globals) (name, how string) {
	if g.Self != "" {
		return g.Self, "named by --self (BANPUSH_SELF)"
	}
	return shortHostname(), "this host's short hostname"
}

// shortHostname is the host name up to its first dot, or "" when the
// system does not say.
func shortHostname() string {
	host, err := os.Hostname()
	if err != nil {
		return ""
	}
	short, _, _ := strings.Cut(host, ".")
	return short
}

// findSelf picks the peer that is this host: the one named by --self (or,
// without it, the short hostname), or else those whose HostName is an
// address of one of this host's interfaces other than loopback. A HostName
// written as a name is not resolved for this: such a host is found by its
// name. hostNames gives each peer's resolved HostName ("" when it does not
// resolve); local lists this host's addresses, asked only when no peer has
// this host's name. It returns nil when no peer is this host.
func findSelf(g *Globals, inv *inventory.Inventory, hostNames map[string]string, local func() []netip.Addr) []selfPeer {
	name, how := selfName(g)
	if _, ok := inv.Peer(name); ok && name != "" {
		return []selfPeer{{Name: name, Reason: how}}
	}
	addrs := local()
	var out []selfPeer
	for _, p := range inv.Peers() {
		a, err := netip.ParseAddr(hostNames[p.Name])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if !a.IsLoopback() && !a.IsUnspecified() && slices.Contains(addrs, a) {
			out = append(out, selfPeer{Name: p.Name, Reason: "its HostName " + a.String() + " is an address of this host"})
		}
	}
	return out
}

// isSelf reports whether name is in self.
func isSelf(self []selfPeer, name string) bool {
	return slices.ContainsFunc(self, func(s selfPeer) bool { return s.Name == name })
}

// selfNote says which peers were taken as this host, for a note on
// stderr; empty when none was.
func selfNote(g *Globals, self []selfPeer) string {
	if len(self) == 0 {
		if g.Self != "" {
			return "no peer is this host: --self " + g.Self + " names no peer of " + g.Inventory + ", and no peer's HostName is an address of this host"
		}
		return ""
	}
	var parts []string
	for _, s := range self {
		parts = append(parts, s.Name+" ("+s.Reason+")")
	}
	return "this host is " + strings.Join(parts, ", ") + ": nothing is sent to it"
}
