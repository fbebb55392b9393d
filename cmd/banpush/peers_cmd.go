package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/spool"
)

// PeersCmd lists and edits the inventory. Each subcommand is one struct;
// new ones (a health check, trusting a host key) are one more field.
type PeersCmd struct {
	List     PeersListCmd     `cmd:"" help:"List the peers with the SSH settings banpush uses for them."`
	Add      PeersAddCmd      `cmd:"" help:"Add a peer to the inventory."`
	Remove   PeersRemoveCmd   `cmd:"" help:"Remove a peer from the inventory; its queued bans are no longer sent to it."`
	Check    PeersCheckCmd    `cmd:"" help:"Connect to peers and ping their receivers; say what to fix."`
	Trust    PeersTrustCmd    `cmd:"" help:"Show peers' host key fingerprints and add them to known_hosts."`
	Ignoreip PeersIgnoreipCmd `cmd:"" name:"ignoreip" help:"Print every peer's addresses as a fail2ban ignoreip value, so that no host bans the fleet."`
}

// Help explains the inventory file.
func (c *PeersCmd) Help() string {
	return `The inventory (--inventory, BANPUSH_INVENTORY, default /etc/banpush/peers) is an
ssh_config file: one "Host NAME" block per peer, and "Host *" blocks for defaults.
Because it is plain ssh_config, "ssh -F /etc/banpush/peers NAME" reaches a peer the
way banpush does, and "ssh -G -F /etc/banpush/peers NAME" shows how ssh reads it.

    # Defaults for every peer: written last, so a peer's own lines win.
    Host web1
        HostName 192.0.2.10

    Host db
        HostName db.internal.example
        Port 2222

    Host *
        User banpush
        IdentityFile /etc/banpush/id_ed25519
        UserKnownHostsFile /etc/banpush/known_hosts

Rules: peer names use A-Z a-z 0-9 . _ - (at most 64); only standard OpenSSH
keywords; no Match and no Include; a Host line names exactly one peer or is
"Host *". As in ssh, the first value found for a keyword wins, so a "Host *"
block above a peer overrides it. After the inventory, banpush reads
~/.ssh/config and /etc/ssh/ssh_config (of the account it runs as), then uses
OpenSSH's defaults. ProxyJump and ProxyCommand are not supported.

"banpush peers add" and "banpush peers remove" keep every other line of the
file, comments included, byte for byte.

One inventory can serve a whole fleet, copied to every host: each host skips
the peer that is itself (--self, BANPUSH_SELF; see 'banpush --help').`
}

// PeersListCmd prints every peer with its resolved settings.
type PeersListCmd struct {
	JSON bool `help:"Print a JSON array instead of a table."`
}

// Help explains the output.
func (c *PeersListCmd) Help() string {
	return `Prints each peer with the values banpush will use: HostName, Port, User,
identity files and known_hosts files, after the inventory, ~/.ssh/config,
/etc/ssh/ssh_config and OpenSSH's defaults. When no IdentityFile is configured,
OpenSSH's default list is shown (missing files are skipped when connecting).
The certificates are those the sender offers: the KEY-cert.pub beside each
identity file, and each CertificateFile whose key it has (a CERTIFICATES
column appears when a peer has one).

    banpush peers list
    banpush peers list --json | jq -r '.[].name'

JSON keys: name, hostname, port, user, identity_files, certificate_files,
identities_only, user_known_hosts_files, global_known_hosts_files,
host_key_alias, connect_timeout_seconds, self (true for the peer that is
this host) and self_reason, error (only for a peer that cannot be resolved). Exit status 78 if the inventory is missing or a peer cannot be
resolved.`
}

// peerJSON is one element of "peers list --json". Its keys are stable.
type peerJSON struct {
	Name                  string   `json:"name"`
	HostName              string   `json:"hostname,omitempty"`
	Port                  int      `json:"port,omitempty"`
	User                  string   `json:"user,omitempty"`
	IdentityFiles         []string `json:"identity_files"`
	CertificateFiles      []string `json:"certificate_files"`
	IdentitiesOnly        bool     `json:"identities_only"`
	UserKnownHostsFiles   []string `json:"user_known_hosts_files"`
	GlobalKnownHostsFiles []string `json:"global_known_hosts_files"`
	HostKeyAlias          string   `json:"host_key_alias"`
	ConnectTimeout        float64  `json:"connect_timeout_seconds"`
	Self                  bool     `json:"self"`
	SelfReason            string   `json:"self_reason,omitempty"`
	Error                 string   `json:"error,omitempty"`

	defaultIDs, defaultKnown bool // for the table: OpenSSH's default lists
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Run lists the peers.
func (c *PeersListCmd) Run(env *Env, g *Globals) error {
	r, err := loadResolver(env, g)
	if err != nil {
		return err
	}
	var out []peerJSON
	var failed []error
	for _, p := range r.Inv.Peers() {
		pj, err := listPeer(r, p.Name)
		if err != nil {
			failed = append(failed, err)
		}
		out = append(out, pj)
	}
	hostNames := map[string]string{}
	for _, p := range out {
		hostNames[p.Name] = p.HostName
	}
	self := roster.FindSelf(r.Inv, g.Self, hostNames, roster.LocalAddrs)
	for i := range out {
		for _, sp := range self {
			if sp.Name == out[i].Name {
				out[i].Self, out[i].SelfReason = true, sp.Reason
			}
		}
	}
	for _, w := range r.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	if note := roster.SelfNote(self, g.Self, g.Inventory); note != "" && !c.JSON {
		defer printNote(env.Stderr, "%s", note)
	}
	switch {
	case c.JSON:
		if out == nil {
			out = []peerJSON{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	case len(out) == 0:
		printNote(env.Stderr, "no peers in %s", g.Inventory)
	default:
		if err := printPeers(env.Stdout, out); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		for _, err := range failed[:len(failed)-1] {
			printError(env.Stderr, err)
		}
		return withHint(failed[len(failed)-1], exitConfig, peerHint(g.Inventory, "NAME"))
	}
	return nil
}

// listPeer is what peers list shows of one peer: its settings as the
// sender uses them, or the error that keeps it from being used.
func listPeer(r *roster.Resolver, name string) (peerJSON, error) {
	s, err := r.Settings(name)
	if err != nil {
		return peerJSON{Name: name, Error: err.Error(),
			IdentityFiles: []string{}, CertificateFiles: []string{}, UserKnownHostsFiles: []string{}, GlobalKnownHostsFiles: []string{}}, err
	}
	// What the sender offers: a KEY-cert.pub beside an identity file
	// counts as much as a CertificateFile.
	certs := sshpush.OfferedCertificates(context.Background(), r.Target(s), func(w string) { r.Warnings = append(r.Warnings, w) })
	return peerJSON{
		Name:                  s.Name,
		HostName:              s.HostName,
		Port:                  s.Port,
		User:                  s.User,
		IdentityFiles:         nonNil(s.IdentityFiles),
		CertificateFiles:      nonNil(certs),
		IdentitiesOnly:        s.IdentitiesOnly,
		UserKnownHostsFiles:   nonNil(s.UserKnownHostsFiles),
		GlobalKnownHostsFiles: nonNil(s.GlobalKnownHostsFiles),
		HostKeyAlias:          s.HostKeyAlias,
		ConnectTimeout:        s.ConnectTimeout.Seconds(),
		defaultIDs:            s.Source["IdentityFile"] == "",
		defaultKnown:          s.Source["UserKnownHostsFile"] == "" && s.Source["GlobalKnownHostsFile"] == "",
	}, nil
}

// printPeers writes the peers list's table.
func printPeers(w io.Writer, out []peerJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// The certificates' column appears in a fleet that has them.
	certs := slices.ContainsFunc(out, func(p peerJSON) bool { return len(p.CertificateFiles) > 0 })
	header := "NAME\tHOSTNAME\tPORT\tUSER\tIDENTITY FILES"
	if certs {
		header += "\tCERTIFICATES"
	}
	fmt.Fprintln(tw, header+"\tKNOWN_HOSTS FILES")
	for _, p := range out {
		if p.Error != "" {
			// Not a row of dashes: say that the error below is this peer's.
			fmt.Fprintf(tw, "%s\t(cannot be used: see the error below)\n", p.Name)
			continue
		}
		ids, known := strings.Join(p.IdentityFiles, ","), strings.Join(append(p.UserKnownHostsFiles, p.GlobalKnownHostsFiles...), ",")
		if p.defaultIDs {
			ids = "(ssh defaults)"
		}
		if p.defaultKnown {
			known = "(ssh defaults)"
		}
		if certs {
			c := strings.Join(p.CertificateFiles, ",")
			if c == "" {
				c = "-"
			}
			ids += "\t" + c
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.HostName, p.Port, p.User, ids, known)
	}
	return tw.Flush()
}

// PeersAddCmd appends a Host block.
type PeersAddCmd struct {
	Name     string `arg:"" help:"Peer name: A-Z a-z 0-9 . _ - (at most 64)."`
	Host     string `required:"" help:"Host name or IP address to connect to (HostName)." placeholder:"HOST"`
	Port     string `help:"SSH port (Port), 1 to 65535; default: the inventory's Host * block, else 22." placeholder:"N"`
	User     string `help:"Remote account (User); default: the inventory's Host * block, else the local user." placeholder:"USER"`
	Identity string `help:"Private key file (IdentityFile), absolute or starting with ~/." placeholder:"FILE"`
}

// Help shows examples.
func (c *PeersAddCmd) Help() string {
	return `Appends a "Host NAME" block to the inventory, after the last peer (before the
"Host *" defaults), and leaves every other line as it was. The file is
replaced atomically and keeps its mode; a missing inventory is created with
mode 0600.

    banpush peers add web1 --host 192.0.2.10
    banpush peers add db --host db.internal.example --port 2222 --user banpush \
        --identity /etc/banpush/id_ed25519

writes

    Host db
        HostName db.internal.example
        Port 2222
        User banpush
        IdentityFile /etc/banpush/id_ed25519

It ends with a hint to run 'banpush sync NAME', which queues for the new peer
the bans the local fail2ban holds now (push only shares bans as they
happen).

Exit status 78 if the name is taken or unsafe, a value is invalid, or the
inventory cannot be read or written.`
}

// Run adds the peer.
func (c *PeersAddCmd) Run(env *Env, g *Globals) error {
	spec := inventory.PeerSpec{Name: c.Name, HostName: c.Host, User: c.User, IdentityFile: c.Identity}
	if c.Port != "" {
		n, err := strconv.Atoi(c.Port)
		if err != nil || n < 1 || n > 65535 {
			return errorf(exitConfig, "give a port from 1 to 65535", "invalid --port")
		}
		spec.Port = n
	}
	if err := spec.Check(); err != nil {
		return withHint(err, exitConfig, "run 'banpush peers add --help' for the rules")
	}
	inv, err := inventory.Load(g.Inventory)
	switch {
	case errors.Is(err, inventory.ErrNotExist):
		inv = inventory.New(g.Inventory)
	case err != nil:
		return withHint(err, exitConfig, "fix the peers file; 'ssh -G -F "+g.Inventory+" NAME' shows how ssh reads it")
	}
	if err := inv.Add(spec); err != nil {
		if errors.Is(err, inventory.ErrDuplicate) {
			return withHint(err, exitConfig, "pick another name, or remove the old peer first with 'banpush peers remove "+c.Name+"'")
		}
		return withHint(err, exitConfig, "run 'banpush peers add --help' for the rules")
	}
	if err := inv.Save(); err != nil {
		return withHint(err, exitConfig, "check that "+g.Inventory+" and its directory are writable")
	}
	p, _ := inv.Peer(c.Name)
	printNote(env.Stderr, "added peer %s at line %d of %s", c.Name, p.Line, g.Inventory)
	// Say at once if the new lines have no effect or the peer cannot be used.
	r, err := roster.NewResolver(inv, env.Getenv)
	if err != nil {
		return err
	}
	if _, err := r.Settings(c.Name); err != nil {
		printWarning(env.Stderr, "peer %s cannot be used yet: %v", c.Name, err)
	}
	for _, w := range r.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	// A new peer starts at the start of the journal: say what it will get.
	if sp, err := spool.OpenExisting(g.Spool, spool.Options{}); err == nil && sp != nil {
		if n, _, err := sp.Pending(c.Name); err == nil && n > 0 {
			printNote(env.Stderr, "peer %s will be sent the %s still in the spool (those not expired), then every new one", c.Name, plural(n, "ban"))
		}
	}
	// The spool holds only what was pushed lately: the long and permanent
	// bans fail2ban still holds are sent by sync.
	printHint(env.Stderr, "run 'banpush sync "+c.Name+"' (as root) to send "+c.Name+" the bans fail2ban holds here now")
	return nil
}

// PeersRemoveCmd deletes a Host block.
type PeersRemoveCmd struct {
	Name string `arg:"" help:"Peer to remove."`
}

// Help explains what else goes.
func (c *PeersRemoveCmd) Help() string {
	return `Removes the peer's "Host NAME" block: its lines, comment lines directly above
it (after a blank line) and directly below its last setting. Every other line
stays byte for byte. The bans still queued for the peer are no longer sent to
it. They stay in the spool's journal until the sender compacts it, and a
peer added later, under this name or another, starts with every ban still
in the journal that has not expired ('peers add' says how many).

    banpush peers remove web1

Exit status 78 if there is no such peer or the inventory cannot be read or
written.`
}

// Run removes the peer.
func (c *PeersRemoveCmd) Run(env *Env, g *Globals) error {
	inv, err := loadInventory(g)
	if err != nil {
		return err
	}
	if err := inv.Remove(c.Name); err != nil {
		if errors.Is(err, inventory.ErrNoPeer) {
			return withHint(err, exitConfig, "'banpush peers list' shows the peers")
		}
		return withHint(err, exitConfig, "fix the peers file; 'ssh -G -F "+g.Inventory+" NAME' shows how ssh reads it")
	}
	if err := inv.Save(); err != nil {
		return withHint(err, exitConfig, "check that "+g.Inventory+" and its directory are writable")
	}
	printNote(env.Stderr, "removed peer %s from %s", c.Name, g.Inventory)
	sp, err := spool.OpenExisting(g.Spool, spool.Options{})
	if err == nil && sp == nil {
		return nil // nothing was ever queued, for it or any peer
	}
	if err == nil {
		var n int
		if n, err = sp.RemovePeer(c.Name); err == nil {
			printNote(env.Stderr, "%s queued for peer %s will not be sent to it; a peer added later (under any name) starts with every ban still in the spool that has not expired",
				plural(n, "ban"), c.Name)
			return nil
		}
	}
	printWarning(env.Stderr, "bans still queued for peer %s will not be sent to it, but the spool could not forget its place: %v", c.Name, err)
	return nil
}
