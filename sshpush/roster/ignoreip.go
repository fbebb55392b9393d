package roster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// The fleet's addresses, for fail2ban's ignoreip on every host of the
// fleet ('banpush peers ignoreip').

// Fail2banLoopback is fail2ban's own default ignoreip: a jail that sets
// ignoreip replaces it, so IgnoreIP starts with it.
var Fail2banLoopback = []string{"127.0.0.1/8", "::1"}

// HostAddrs is a peer's HostName and the addresses it resolves to. Its
// JSON keys are part of 'banpush peers ignoreip --json'.
type HostAddrs struct {
	Peer      string   `json:"peer"`
	HostName  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
}

// IgnoreIP is fail2ban's loopback default followed by every peer's
// addresses, each once and none that an earlier entry covers.
func IgnoreIP(peers []HostAddrs) []string {
	value := slices.Clone(Fail2banLoopback)
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

// Resolve fills each peer's addresses from its HostName, at most 16
// lookups at once, and returns an error for each that does not resolve.
func Resolve(ctx context.Context, peers []HostAddrs) []error {
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
