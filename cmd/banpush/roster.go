package main

import (
	"errors"
	"io/fs"
	"os"
	"slices"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush/roster"
)

// The roster (sshpush/roster) as the commands load it, its errors given
// their hints and exit codes.

// rosterConfig is where the inventory is and which peer is this host.
func (g *Globals) rosterConfig(env *Env) roster.Config {
	return roster.Config{Inventory: g.Inventory, Self: g.Self, Getenv: env.Getenv}
}

// loadRoster resolves every peer but this host, or those named
// (roster.Load).
func loadRoster(env *Env, g *Globals, names ...string) (roster.Roster, error) {
	ro, err := roster.Load(g.rosterConfig(env), names...)
	return ro, rosterError(err)
}

// loadResolver reads the inventory and makes its resolver.
func loadResolver(env *Env, g *Globals) (*roster.Resolver, error) {
	r, err := roster.LoadResolver(g.Inventory, env.Getenv)
	return r, rosterError(err)
}

// loadInventory reads the inventory alone, for the commands that edit it.
func loadInventory(g *Globals) (*inventory.Inventory, error) {
	inv, err := inventory.Load(g.Inventory)
	if err != nil {
		return nil, rosterError(&roster.InventoryError{Path: g.Inventory, Err: err})
	}
	return inv, nil
}

// rosterError gives the roster's errors their hints and exit codes.
func rosterError(err error) error {
	var inv *roster.InventoryError
	var unknown *roster.UnknownPeerError
	var self *roster.SelfError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		return withHint(err, exitConfig, "'banpush peers list' shows the peers")
	case errors.As(err, &self):
		return withHint(err, exitUsage, "name the other peers, or give the right --self (BANPUSH_SELF)")
	case errors.As(err, &inv) && errors.Is(err, inventory.ErrNotExist):
		return errorf(exitConfig, "add a peer with 'banpush peers add NAME --host HOST', or point --inventory (BANPUSH_INVENTORY) at the peers file",
			"inventory %s does not exist", inv.Path)
	case notRoot(err):
		return withHint(err, exitConfig, notRootHint)
	case errors.As(err, &inv):
		return withHint(err, exitConfig, peerHint(inv.Path, "NAME"))
	}
	return err
}

// peerHint is the hint for a peer whose settings cannot be resolved.
func peerHint(inventory, name string) string {
	return "fix the peers file; 'ssh -G -F " + inventory + " " + name + "' shows how ssh reads it"
}

// notRootHint is the hint for a file of root's that another account cannot
// read: the inventory (0600), the spool, the pushing key.
const notRootHint = "run it as root (sudo): the inventory, the spool and the pushing key are root's alone"

// notRoot reports whether err is a permission denied that running as root
// would not meet.
func notRoot(err error) bool {
	return errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
