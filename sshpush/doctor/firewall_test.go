package doctor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/firewall"
)

// TestCheckFirewall: who bans the received lines, and the fast path's
// service and kernel set, with a stand-in for systemctl.
func TestCheckFirewall(t *testing.T) {
	feeds := map[string][]string{JailFull: {"/var/log/banpush/received.log"}}
	withAction := []f2b.Setting{{Jail: JailFull, Key: "add"}, {Jail: JailFull, Key: "addaction", Values: []string{"nftables-allports"}}}
	noAction := []f2b.Setting{{Jail: JailFull, Key: "add"}}
	good := &firewall.Status{HasState: true, SetPresent: true, Members: 10, Bans: 10}
	for _, c := range []struct {
		name            string
		enabled, active string
		settings        []f2b.Setting
		status          *firewall.Status
		statusErr       error
		want            []string // "check status" of each result
	}{
		{"fail2ban path", "disabled", "inactive", withAction, nil, nil, []string{"ban-path ok", "firewall skip"}},
		{"fast path", "enabled", "active", noAction, good, nil, []string{"ban-path ok", "firewall ok", "firewall-set ok"}},
		{"both", "enabled", "active", withAction, good, nil, []string{"ban-path warn", "firewall ok", "firewall-set ok"}},
		{"neither", "disabled", "inactive", noAction, nil, nil, []string{"ban-path fail", "firewall skip"}},
		{"stopped", "enabled", "inactive", noAction, good, nil, []string{"ban-path fail", "firewall fail", "firewall-set ok"}},
		{"no set", "enabled", "active", noAction, &firewall.Status{HasState: true, Bans: 3, Missing: 3}, nil, []string{"ban-path ok", "firewall ok", "firewall-set fail"}},
		{"drift", "enabled", "active", noAction, &firewall.Status{HasState: true, SetPresent: true, Members: 9, Bans: 10, Missing: 1}, nil, []string{"ban-path ok", "firewall ok", "firewall-set warn"}},
		{"not root", "enabled", "active", noAction, &firewall.Status{}, errors.New("permission denied"), []string{"ban-path ok", "firewall ok", "firewall-set fail"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := CheckFirewall(context.Background(), Firewall{Systemd: true, Run: systemctlFor(t, FirewallService, c.enabled, c.active),
				Receiving: feeds, Settings: c.settings, Status: c.status, StatusErr: c.statusErr})
			var got []string
			for _, r := range rs {
				got = append(got, r.Check+" "+string(r.Status))
			}
			if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
				t.Errorf("got %v, want %v", got, c.want)
				for _, r := range rs {
					t.Logf("%+v", r)
				}
			}
		})
	}
}
