package main

import (
	"fmt"
	"net/netip"

	"github.com/banpush/banpush/sshpush/record"
)

// The address arguments of push and unban: parsed and checked as a
// receiver would, and never echoed unless they are safe to show.

// checkAddrs parses the address arguments of push and unban and checks
// them as receivers would (private ones with allowPrivate); each refused
// one is reported on stderr, never echoed unless it is short and
// printable, and counted.
func checkAddrs(env *Env, ips []string, allowPrivate bool) (addrs []netip.Addr, refused int) {
	pol := record.Policy{AllowPrivate: allowPrivate}
	for _, ip := range ips {
		a, err := record.ParseAddr(ip)
		if err == nil {
			err = pol.Check(a)
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "banpush: %s: refused: %v\n", safeArg(ip), err)
			refused++
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, refused
}

// safeArg shows an argument in a message only if it is short printable
// ASCII; fail2ban tags can carry anything.
func safeArg(s string) string {
	if len(s) > 64 {
		return "(argument)"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "(argument)"
		}
	}
	return s
}
