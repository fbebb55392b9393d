package roster

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush"
)

// Config says where the inventory is and which host this is.
type Config struct {
	Inventory string // path of the peers file
	// Self names the peer that is this host (--self); "" means this
	// host's short hostname, or else a peer whose HostName is one of
	// this host's addresses (FindSelf).
	Self string
	// Getenv gives SSH_AUTH_SOCK and the variables an IdentityAgent
	// names.
	Getenv func(string) string
	// Addrs lists this host's addresses; nil means LocalAddrs.
	Addrs func() []netip.Addr
}

// Peer is a peer to deliver to, resolved.
type Peer struct {
	Name   string
	Target sshpush.Target
}

// Roster is whom a run delivers to, as the inventory says.
type Roster struct {
	Peers    []Peer           // the peers to deliver to, resolved, in the inventory's order
	Bad      map[string]error // peers whose settings cannot be resolved: not delivered to
	Warnings []string         // what resolving them said
	// Live names every peer of the inventory but this host: the sender
	// compacts the spool past them. It is empty, not nil, for an
	// inventory of this host alone.
	Live []string
	Self []Self // the peers that are this host (FindSelf)
}

// UnknownPeerError is a peer name that the inventory does not have.
type UnknownPeerError struct {
	Name, Inventory string
}

func (e *UnknownPeerError) Error() string {
	return fmt.Sprintf("no peer named %q in %s", e.Name, e.Inventory)
}

// Load reads the inventory and resolves every peer but this host, or the
// peers named. A peer whose settings cannot be resolved is in Bad with its
// error; a name the inventory does not have is an *UnknownPeerError; an
// inventory that cannot be read is an *InventoryError. A name that is this host
// is resolved like the others: callers that deliver refuse it.
func Load(cfg Config, names ...string) (Roster, error) {
	r, err := LoadResolver(cfg.Inventory, cfg.Getenv)
	if err != nil {
		return Roster{}, err
	}
	for _, n := range names {
		if _, ok := r.Inv.Peer(n); !ok {
			return Roster{}, &UnknownPeerError{Name: n, Inventory: cfg.Inventory}
		}
	}
	ro := Roster{Bad: map[string]error{}}
	all := r.Names()
	if len(all) > 0 {
		// An inventory of this host alone is an empty list of live
		// peers, which lets the spool be compacted, not an unknown one.
		ro.Live = []string{}
	}
	settings := map[string]*inventory.Settings{}
	hostNames := map[string]string{}
	errs := map[string]error{}
	for _, n := range all {
		if settings[n], errs[n] = r.Settings(n); errs[n] == nil {
			hostNames[n] = settings[n].HostName
		}
	}
	addrs := cfg.Addrs
	if addrs == nil {
		addrs = LocalAddrs
	}
	ro.Self = FindSelf(r.Inv, cfg.Self, hostNames, addrs)
	for _, n := range all {
		if !IsSelf(ro.Self, n) {
			ro.Live = append(ro.Live, n)
		}
	}
	if len(names) == 0 {
		names = ro.Live
	}
	for _, n := range names {
		if errs[n] != nil {
			ro.Bad[n] = errs[n]
			continue
		}
		ro.Peers = append(ro.Peers, Peer{Name: n, Target: r.Target(settings[n])})
	}
	ro.Warnings = r.Warnings
	return ro, nil
}

// SelfError is a peer named to deliver to that is this host.
type SelfError struct{ Self Self }

func (e *SelfError) Error() string {
	return fmt.Sprintf("peer %s is this host (%s): banpush sends nothing to itself", e.Self.Name, e.Self.Reason)
}

// NotSelf returns a *SelfError if one of names is this host.
func (ro Roster) NotSelf(names []string) error {
	for _, s := range ro.Self {
		if slices.Contains(names, s.Name) {
			return &SelfError{Self: s}
		}
	}
	return nil
}
