package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// fail2banLoopback is fail2ban's own default ignoreip: a jail that sets
// ignoreip replaces it, so the value printed starts with it.
var fail2banLoopback = []string{"127.0.0.1/8", "::1"}

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

type ignoreipPeer struct {
	Peer      string   `json:"peer"`
	HostName  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
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
	var peers []ignoreipPeer
	for _, name := range r.Names() {
		s, err := r.Settings(name)
		if err != nil {
			return withHint(err, exitConfig, peerHint(g.Inventory, name))
		}
		peers = append(peers, ignoreipPeer{Peer: name, HostName: s.HostName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if failed := resolvePeers(ctx, peers); len(failed) > 0 {
		for _, err := range failed[:len(failed)-1] {
			printError(env.Stderr, err)
		}
		return withHint(failed[len(failed)-1], exitPeers, "fix the HostName in "+g.Inventory+" (or DNS), or remove the peer; nothing was printed")
	}
	line := strings.Join(ignoreipValue(peers), " ")
	if !c.JSON {
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Ignoreip string         `json:"ignoreip"`
		Peers    []ignoreipPeer `json:"peers"`
	}{line, peers})
}

// ignoreipValue is fail2ban's loopback default followed by every peer's
// addresses, each once and none that an earlier entry covers.
func ignoreipValue(peers []ignoreipPeer) []string {
	value := slices.Clone(fail2banLoopback)
	var covered []netip.Prefix
	for _, v := range value {
		covered = append(covered, netip.MustParsePrefix(strings.Replace(v, "::1", "::1/128", 1)))
	}
	for _, p := range peers {
		for _, s := range p.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil || slices.ContainsFunc(covered, func(c netip.Prefix) bool { return c.Contains(a) }) {
				continue
			}
			covered = append(covered, netip.PrefixFrom(a, a.BitLen()))
			value = append(value, s)
		}
	}
	return value
}

// resolvePeers fills each peer's addresses from its HostName, at most 16
// lookups at once, and returns an error for each that does not resolve.
func resolvePeers(ctx context.Context, peers []ignoreipPeer) []error {
	errs := make([]error, len(peers))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range peers {
		p := &peers[i]
		if a, err := netip.ParseAddr(p.HostName); err == nil {
			p.Addresses = []string{a.WithZone("").Unmap().String()}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", p.HostName)
			if err != nil {
				errs[i] = fmt.Errorf("peer %s: cannot resolve %s: %v", p.Peer, p.HostName, err)
				return
			}
			p.Addresses = []string{}
			for _, a := range addrs {
				if s := a.WithZone("").Unmap().String(); !slices.Contains(p.Addresses, s) {
					p.Addresses = append(p.Addresses, s)
				}
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
