// Package roster says whom banpush delivers to: the peers of the
// inventory, each resolved with the account's own ssh_config files into
// what the SSH client takes (sshpush.Target), less the peer that is this
// host, so that one inventory serves every host of a fleet. push, flush,
// sync, status, peers and doctor share it; the background sender reads it
// again while it runs.
//
// What it trusts: the inventory and the ssh_config files, which belong to
// the account banpush runs as (root) and to the system. Problems in the
// account's and the system's ssh_config are warnings, never fatal: a broken
// ~/.ssh/config must not stop the bans.
package roster

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush"
)

// SystemSSHConfig is read after the account's ~/.ssh/config, as ssh(1)
// does.
const SystemSSHConfig = "/etc/ssh/ssh_config"

// Resolver resolves the inventory's peers with the account's and the
// system's ssh_config as lower layers.
type Resolver struct {
	Inv *inventory.Inventory
	// Warnings are what resolving said so far: ignored ssh_config files,
	// settings banpush does not follow.
	Warnings []string

	local  inventory.Local
	layers []*inventory.Layer
	getenv func(string) string
}

// LoadResolver reads the inventory at path and makes its resolver
// (NewResolver). An inventory that cannot be read is an *InventoryError.
func LoadResolver(path string, getenv func(string) string) (*Resolver, error) {
	inv, err := inventory.Load(path)
	if err != nil {
		return nil, &InventoryError{Path: path, Err: err}
	}
	return NewResolver(inv, getenv)
}

// InventoryError is an inventory that cannot be read: missing (it wraps
// inventory.ErrNotExist), unreadable or invalid.
type InventoryError struct {
	Path string
	Err  error
}

func (e *InventoryError) Error() string { return e.Err.Error() }
func (e *InventoryError) Unwrap() error { return e.Err }

// NewResolver makes the resolver of inv for the account banpush runs as.
// getenv gives SSH_AUTH_SOCK and the variables an IdentityAgent names.
func NewResolver(inv *inventory.Inventory, getenv func(string) string) (*Resolver, error) {
	local, err := localAccount()
	if err != nil {
		return nil, err
	}
	r := &Resolver{Inv: inv, local: local, getenv: getenv}
	for _, path := range []string{filepath.Join(local.Home, ".ssh", "config"), SystemSSHConfig} {
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

// Names lists the names of the inventory's peers, in its order.
func (r *Resolver) Names() []string {
	var out []string
	for _, p := range r.Inv.Peers() {
		out = append(out, p.Name)
	}
	return out
}

// Settings resolves one peer; its warnings join r.Warnings.
func (r *Resolver) Settings(name string) (*inventory.Settings, error) {
	s, err := r.Inv.Resolve(name, r.local, r.layers...)
	if err != nil {
		return nil, err
	}
	for _, w := range s.Warnings {
		r.Warnings = append(r.Warnings, "peer "+name+": "+w)
	}
	return s, nil
}

// Target turns resolved settings into what the SSH client takes.
func (r *Resolver) Target(s *inventory.Settings) sshpush.Target {
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

// Home is the home directory of the account banpush runs as, from the user
// database.
func (r *Resolver) Home() string { return r.local.Home }
