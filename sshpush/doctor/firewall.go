package doctor

import (
	"context"
	"sort"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/firewall"
)

// FirewallService is the fast path's unit (contrib/systemd).
const FirewallService = "banpush-firewall.service"

// Firewall says what the fast path's checks look at.
type Firewall struct {
	Systemd bool   // systemd runs here
	Run     Runner // for systemctl
	// Receiving: as Fail2ban.Receiving, the receiving jails that
	// authorized_keys lines feed.
	Receiving map[string][]string
	// Settings are the jails' settings in fail2ban's configuration
	// (f2b.Client.Settings); SettingsErr why they could not be read.
	Settings    []f2b.Setting
	SettingsErr error
	// Status is the fast path's state and kernel set (firewall.Inspect),
	// nil where its state directory does not exist; StatusErr why it
	// could not be read.
	Status    *firewall.Status
	StatusErr error
}

// CheckFirewall checks who bans the received lines: for each receiving
// jail the lines feed, fail2ban's action or the fast path ('banpush
// firewall'), and warns when both ban the same lines (twice, the slow one
// for nothing) or neither does (the bans are written and never enforced).
// Where the fast path is used, it checks the service runs, the kernel
// set exists, and the set holds what the state says.
func CheckFirewall(ctx context.Context, cfg Firewall) []Result {
	used := cfg.Status != nil && cfg.Status.HasState
	running := false
	if cfg.Systemd {
		enabled, _ := cfg.Run(ctx, "systemctl", "is-enabled", FirewallService)
		active, _ := cfg.Run(ctx, "systemctl", "is-active", FirewallService)
		running = firstWord(active) == "active"
		used = used || firstWord(enabled) == "enabled" || running
	}
	if cfg.Status != nil && cfg.Status.Running {
		running = true // without systemd, or started by hand
	}
	var out []Result
	if len(cfg.Receiving) > 0 && cfg.SettingsErr == nil {
		out = append(out, banPaths(cfg, running)...)
	}
	if !used {
		return append(out, result("firewall", "", Skip, "", "banpush firewall (the fast path) is not used here"))
	}
	setup := "cp contrib/systemd/" + FirewallService + " /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now " + FirewallService
	switch {
	case !running && cfg.Systemd:
		out = append(out, result("firewall", "", Fail, setup, "%s is not active: new received bans reach no firewall, and a reboot restores none", FirewallService))
	case !running:
		out = append(out, result("firewall", "", Fail, "run 'banpush firewall' as root, as a service", "no 'banpush firewall' follows the received log"))
	default:
		out = append(out, result("firewall", "", OK, "", "banpush firewall runs"))
	}
	switch st := cfg.Status; {
	case cfg.StatusErr != nil:
		out = append(out, result("firewall-set", "", Fail, "run doctor as root", "cannot compare the kernel set with the fast path's state: %v", cfg.StatusErr))
	case st == nil:
		out = append(out, result("firewall-set", "", Skip, "", "no state yet: the service has not started"))
	case !st.SetPresent:
		out = append(out, result("firewall-set", "", Fail, "systemctl restart "+FirewallService+" (it makes the set and restores the bans)",
			"the kernel set (nftables table inet banpush) does not exist: %d bans of the state are not enforced", st.Bans))
	case st.Missing > 0 || st.Extra > 0:
		out = append(out, result("firewall-set", "", Warn, "if it lasts, systemctl restart "+FirewallService+" makes the set follow the state",
			"the kernel set holds %d addresses, the state %d bans: %d missing from the set, %d not in the state", st.Members, st.Bans, st.Missing, st.Extra))
	default:
		out = append(out, result("firewall-set", "", OK, "", "the kernel set holds the %d bans of the state", st.Bans))
	}
	return out
}

// banPaths says, for each receiving jail the lines feed, who bans its
// lines.
func banPaths(cfg Firewall, fast bool) []Result {
	enabled, actions := map[string]bool{}, map[string]int{}
	for _, s := range cfg.Settings {
		switch s.Key {
		case "add":
			enabled[s.Jail] = true
		case "addaction":
			actions[s.Jail]++
		}
	}
	jails := make([]string, 0, len(cfg.Receiving))
	for j := range cfg.Receiving {
		jails = append(jails, j)
	}
	sort.Strings(jails)
	var out []Result
	for _, j := range jails {
		slow := enabled[j] && actions[j] > 0
		takes := fast && enabled[j] // the fast path bans for the jails the configuration enables
		switch {
		case slow && takes:
			out = append(out, result("ban-path", j, Warn,
				"with banpush firewall, give the jail no action (contrib/fail2ban/jail.d/banpush-firewall.local), then fail2ban-client reload "+j,
				"both fail2ban's action and banpush firewall ban the lines of jail %s: every address twice, one firewall command each", j))
		case !slow && !takes:
			out = append(out, result("ban-path", j, Fail,
				"enable the jail with its action, or run banpush firewall (docs/firewall.md#setting-it-up)",
				"neither fail2ban's action nor banpush firewall bans the lines of jail %s: they are written and never enforced", j))
		case takes:
			out = append(out, result("ban-path", j, OK, "", "banpush firewall bans the lines of jail %s", j))
		default:
			out = append(out, result("ban-path", j, OK, "", "fail2ban's action bans the lines of jail %s", j))
		}
	}
	return out
}
