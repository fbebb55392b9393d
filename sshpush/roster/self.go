package roster

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/banpush/banpush/inventory"
)

// Self is a peer of the inventory that is this host: one inventory can
// then be copied to every host of a fleet, and each sends to the others
// only. Its JSON keys are stable ('banpush peers list --json').
type Self struct {
	Name   string `json:"peer"`
	Reason string `json:"reason"`
}

// selfName is the name this host goes by: self (--self), or the short
// hostname, and how it was chosen.
func selfName(self string) (name, how string) {
	if self != "" {
		return self, "named by --self (BANPUSH_SELF)"
	}
	return ShortHostname(), "this host's short hostname"
}

// ShortHostname is the host name up to its first dot, or "" when the
// system does not say.
func ShortHostname() string {
	host, err := os.Hostname()
	if err != nil {
		return ""
	}
	short, _, _ := strings.Cut(host, ".")
	return short
}

// FindSelf picks the peers of inv that are this host: the one named self
// (--self; "" means the short hostname), or else those whose HostName is
// an address of one of this host's interfaces other than loopback. A
// HostName written as a name is not resolved for this: such a host is
// found by its name. hostNames gives each peer's resolved HostName ("" when
// it does not resolve); addrs lists this host's addresses (LocalAddrs),
// asked only when no peer has this host's name. It returns nil when no peer
// is this host.
func FindSelf(inv *inventory.Inventory, self string, hostNames map[string]string, addrs func() []netip.Addr) []Self {
	name, how := selfName(self)
	if _, ok := inv.Peer(name); ok && name != "" {
		return []Self{{Name: name, Reason: how}}
	}
	local := addrs()
	var out []Self
	for _, p := range inv.Peers() {
		a, err := netip.ParseAddr(hostNames[p.Name])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if !a.IsLoopback() && !a.IsUnspecified() && slices.Contains(local, a) {
			out = append(out, Self{Name: p.Name, Reason: "its HostName " + a.String() + " is an address of this host"})
		}
	}
	return out
}

// IsSelf reports whether name is one of self.
func IsSelf(self []Self, name string) bool {
	return slices.ContainsFunc(self, func(s Self) bool { return s.Name == name })
}

// SelfNote says which peers were taken as this host, for a note; empty
// when none was and none was named. self is --self, inventory the
// inventory's path.
func SelfNote(found []Self, self, inventory string) string {
	if len(found) == 0 {
		if self != "" {
			return "no peer is this host: --self " + self + " names no peer of " + inventory + ", and no peer's HostName is an address of this host"
		}
		return ""
	}
	var parts []string
	for _, s := range found {
		parts = append(parts, s.Name+" ("+s.Reason+")")
	}
	return "this host is " + strings.Join(parts, ", ") + ": nothing is sent to it"
}

// LocalAddrs lists this host's interface addresses: a peer whose HostName
// is one of them is this host, and a receiver never bans them.
func LocalAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
