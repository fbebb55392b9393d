package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/roster"
)

// PeersIgnoreipCmd prints the fleet's addresses for fail2ban's ignoreip.
type PeersIgnoreipCmd struct {
	JSON    bool          `name:"json" help:"Print each peer's addresses as JSON too."`
	Timeout time.Duration `help:"Time limit for resolving every HostName (default: ${default})." default:"10s" placeholder:"D"`
}

// Help says where the value goes.
func (c *PeersIgnoreipCmd) Help() string {
	return `Prints, on one line, fail2ban's default ignoreip (127.0.0.1/8 ::1) followed by
the addresses of every peer of the inventory, this host's included: each
HostName that is an address as it is, and each that is a name resolved now,
to all its IPv4 and IPv6 addresses. Put it in the jails of every host, so
that no host of the fleet ever bans another (a brute force against one host
from a compromised peer is then not shared either: it needs a person):

    printf '[DEFAULT]\nignoreip = %s\n' "$(banpush peers ignoreip)" \
        > /etc/fail2ban/jail.d/00-banpush-ignoreip.local
    fail2ban-client reload

The contrib receiving jails (banpush, banpush-quorum) set no ignoreip of
their own, so [DEFAULT]'s applies to them; a jail that sets its own overrides
[DEFAULT]: add the value there too, and check with
'fail2ban-client get banpush ignoreip'. Run it again after 'banpush peers add' or when an address changes. The
receiver refuses bans of the fleet's addresses on its own (the from= of its
authorized_keys lines, its own addresses, the connecting peer's).

If any HostName does not resolve, nothing is printed and the exit status is
3: a partial list would leave a host of the fleet bannable. Exit status 78
for a missing inventory or a peer banpush cannot use.

JSON: {"ignoreip": "...", "peers": [{"peer", "hostname", "addresses"}]}.`
}

// Run resolves and prints.
func (c *PeersIgnoreipCmd) Run(env *Env, g *Globals) error {
	if c.Timeout <= 0 {
		return errorf(exitUsage, "give a positive duration, e.g. --timeout 10s", "--timeout must be positive")
	}
	r, err := loadResolver(env, g)
	if err != nil {
		return err
	}
	var peers []roster.HostAddrs
	for _, name := range r.Names() {
		s, err := r.Settings(name)
		if err != nil {
			return withHint(err, exitConfig, peerHint(g.Inventory, name))
		}
		peers = append(peers, roster.HostAddrs{Peer: name, HostName: s.HostName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if failed := roster.Resolve(ctx, peers); len(failed) > 0 {
		for _, err := range failed[:len(failed)-1] {
			printError(env.Stderr, err)
		}
		return withHint(failed[len(failed)-1], exitPeers, "fix the HostName in "+g.Inventory+" (or DNS), or remove the peer; nothing was printed")
	}
	line := strings.Join(roster.IgnoreIP(peers), " ")
	if !c.JSON {
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Ignoreip string             `json:"ignoreip"`
		Peers    []roster.HostAddrs `json:"peers"`
	}{line, peers})
}
