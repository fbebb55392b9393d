package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/sender"
)

// systemSSHConfig is read after the user's ~/.ssh/config, as ssh(1) does.
const systemSSHConfig = "/etc/ssh/ssh_config"

// loadInventory reads the inventory, turning a missing file into an error
// with a hint.
func loadInventory(g *Globals) (*inventory.Inventory, error) {
	inv, err := inventory.Load(g.Inventory)
	if errors.Is(err, inventory.ErrNotExist) {
		return nil, errorf(exitConfig, "add a peer with 'banpush peers add NAME --host HOST', or point --inventory (BANPUSH_INVENTORY) at the peers file",
			"inventory %s does not exist", g.Inventory)
	}
	if notRoot(err) {
		return nil, withHint(err, exitConfig, notRootHint)
	}
	if err != nil {
		return nil, withHint(err, exitConfig, "fix the peers file; 'ssh -G -F "+g.Inventory+" NAME' shows how ssh reads it")
	}
	return inv, nil
}

// notRootHint is the hint for a file of root's that another account cannot
// read: the inventory (0600), the spool, the pushing key.
const notRootHint = "run it as root (sudo): the inventory, the spool and the pushing key are root's alone"

// notRoot reports whether err is a permission denied that running as root
// would not meet.
func notRoot(err error) bool {
	return errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0
}

// localAccount describes the account banpush runs as, from os/user: under
// fail2ban HOME is unset, so $HOME is not used.
func localAccount() (inventory.Local, error) {
	u, err := user.Current()
	if err != nil {
		return inventory.Local{}, fmt.Errorf("cannot look up the current user: %w", err)
	}
	host, _ := os.Hostname()
	return inventory.Local{Home: u.HomeDir, User: u.Username, UID: u.Uid, HostName: host}, nil
}

// resolver resolves peers with the user's and the system's ssh_config as
// lower layers. Problems in those files are warnings, never fatal.
type resolver struct {
	inv      *inventory.Inventory
	local    inventory.Local
	layers   []*inventory.Layer
	getenv   func(string) string
	Warnings []string
}

func newResolver(inv *inventory.Inventory, getenv func(string) string) (*resolver, error) {
	local, err := localAccount()
	if err != nil {
		return nil, err
	}
	r := &resolver{inv: inv, local: local, getenv: getenv}
	for _, path := range []string{filepath.Join(local.Home, ".ssh", "config"), systemSSHConfig} {
		l, err := inventory.LoadLayer(path)
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s is ignored: %v", path, err))
			continue
		}
		if l != nil {
			r.layers = append(r.layers, l)
		}
	}
	return r, nil
}

// loadResolver reads the inventory and makes its resolver.
func loadResolver(g *Globals, env *Env) (*inventory.Inventory, *resolver, error) {
	inv, err := loadInventory(g)
	if err != nil {
		return nil, nil, err
	}
	r, err := newResolver(inv, env.Getenv)
	if err != nil {
		return nil, nil, err
	}
	return inv, r, nil
}

// settings resolves one peer.
func (r *resolver) settings(name string) (*inventory.Settings, error) {
	s, err := r.inv.Resolve(name, r.local, r.layers...)
	if err != nil {
		return nil, err
	}
	for _, w := range s.Warnings {
		r.Warnings = append(r.Warnings, "peer "+name+": "+w)
	}
	return s, nil
}

// target turns resolved settings into what the SSH client takes.
func (r *resolver) target(s *inventory.Settings) sshpush.Target {
	agent := s.IdentityAgent
	switch {
	case agent == "" || agent == "SSH_AUTH_SOCK":
		agent = r.getenv("SSH_AUTH_SOCK")
	case strings.HasPrefix(agent, "$"):
		agent = r.getenv(agent[1:])
	case agent == "none":
		agent = ""
	}
	// "ask" (OpenSSH's default) is "yes" without a terminal; "no",
	// "accept-new" and "off" would accept keys, and banpush never does.
	if k := s.StrictHostKeyChecking; k == "no" || k == "off" || k == "accept-new" {
		r.Warnings = append(r.Warnings, fmt.Sprintf("peer %s: StrictHostKeyChecking %s is ignored: banpush always verifies host keys (add keys with 'banpush peers trust %s')",
			s.Name, s.StrictHostKeyChecking, s.Name))
	}
	return sshpush.Target{
		Name:             s.Name,
		HostName:         s.HostName,
		Port:             s.Port,
		User:             s.User,
		IdentityFiles:    s.IdentityFiles,
		CertificateFiles: s.CertificateFiles,
		IdentitiesOnly:   s.IdentitiesOnly,
		IdentityAgent:    agent,
		KnownHostsFiles:  append(append([]string(nil), s.UserKnownHostsFiles...), s.GlobalKnownHostsFiles...),
		HostKeyAlias:     s.HostKeyAlias,
		ConnectTimeout:   s.ConnectTimeout,
	}
}

// delivery is who a run delivers to, as the inventory says.
type delivery struct {
	peers    []deliver.Peer   // resolved peers to deliver to
	bad      map[string]error // peers whose settings cannot be resolved
	warnings []string         // from resolving them
	live     []string         // every peer of the inventory but this host
	self     []selfPeer       // the peers that are this host (findSelf)
}

// roster is the sender's view of the delivery.
func (d delivery) roster() sender.Roster {
	return sender.Roster{Peers: d.peers, Live: d.live}
}

// resolveDelivery resolves every peer of the inventory but this host (see
// findSelf), or those named. A peer that cannot be resolved is returned in
// bad with its error; a name that is not in the inventory is an error. A
// name that is this host is resolved like the others: callers that deliver
// refuse it.
func resolveDelivery(g *Globals, env *Env, names []string) (delivery, error) {
	inv, r, err := loadResolver(g, env)
	if err != nil {
		return delivery{}, err
	}
	for _, n := range names {
		if _, ok := inv.Peer(n); !ok {
			return delivery{}, errorf(exitConfig, "'banpush peers list' shows the peers", "no peer named %q in %s", n, g.Inventory)
		}
	}
	d := delivery{bad: map[string]error{}}
	if len(peerNames(inv)) > 0 {
		// An inventory of this host alone is an empty list of live
		// peers, which lets the spool be compacted, not an unknown one.
		d.live = []string{}
	}
	settings := map[string]*inventory.Settings{}
	hostNames := map[string]string{}
	errs := map[string]error{}
	for _, n := range peerNames(inv) {
		if settings[n], errs[n] = r.settings(n); errs[n] == nil {
			hostNames[n] = settings[n].HostName
		}
	}
	d.self = findSelf(g, inv, hostNames, localAddrs)
	for _, n := range peerNames(inv) {
		if !isSelf(d.self, n) {
			d.live = append(d.live, n)
		}
	}
	if len(names) == 0 {
		names = d.live
	}
	for _, n := range names {
		if errs[n] != nil {
			d.bad[n] = errs[n]
			continue
		}
		d.peers = append(d.peers, deliver.Peer{Name: n, Target: r.target(settings[n])})
	}
	d.warnings = r.Warnings
	return d, nil
}

// peerNames lists the names of the inventory's peers.
func peerNames(inv *inventory.Inventory) []string {
	var out []string
	for _, p := range inv.Peers() {
		out = append(out, p.Name)
	}
	return out
}
