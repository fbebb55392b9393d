package doctor

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/banpush/banpush/sshpush/f2b"
)

// The receiving jails of contrib/fail2ban/jail.d.
const (
	JailFull   = "banpush"
	JailQuorum = "banpush-quorum"
	JailFleet  = "banpush-fleet"
)

// Fail2ban says what the fail2ban checks look at.
type Fail2ban struct {
	Client    *f2b.Client
	Socket    string // for messages: the socket Client uses
	ConfigDir string // fail2ban's configuration, read with fail2ban-client -d

	// Pusher: this host has an inventory, so some jail should push.
	Pusher bool
	// Receiving maps each receiving jail that authorized_keys lines feed
	// (JailFull, JailQuorum, JailFleet) to the logs those lines write. Empty on a
	// host that receives nothing.
	Receiving map[string][]string
}

// CheckFail2ban checks that fail2ban runs, that every jail configured with
// the banpush action has it loaded in the running server (the reload
// trap), and that the receiving jails run and watch the logs the receivers
// write.
func CheckFail2ban(ctx context.Context, cfg Fail2ban) []Result {
	if !cfg.Pusher && len(cfg.Receiving) == 0 {
		return []Result{result("fail2ban", "", Skip, "", "this host neither pushes (no inventory) nor receives (no banpush line in authorized_keys)")}
	}
	if err := cfg.Client.Ping(ctx); err != nil {
		r := result("fail2ban", "", Fail, "start fail2ban (systemctl start fail2ban), or give its socket with --fail2ban-socket (BANPUSH_FAIL2BAN_SOCKET)",
			"no fail2ban server answers at %s: %v", cfg.Socket, err)
		if errors.Is(err, exec.ErrNotFound) {
			r = result("fail2ban", "", Fail, "apt-get install fail2ban", "fail2ban-client is not installed")
		}
		return []Result{r, result("jails", "", Skip, "", "fail2ban does not answer: its jails were not checked")}
	}
	out := []Result{result("fail2ban", "", OK, "", "fail2ban answers at %s", cfg.Socket)}
	running, err := cfg.Client.Jails(ctx)
	if err != nil {
		return append(out, result("jails", "", Fail, "", "cannot list the running jails: %v", err))
	}
	configured, err := cfg.Client.Configured(ctx, cfg.ConfigDir)
	if err != nil {
		out = append(out, result("fail2ban-config", "", Warn, "'fail2ban-client -t' shows what is wrong with the configuration",
			"cannot read fail2ban's configuration in %s: %v; only the running jails are checked", cfg.ConfigDir, err))
	}
	out = append(out, pushActions(ctx, cfg, running, configured)...)
	return append(out, receivingJails(ctx, cfg, running)...)
}

// pushActions checks the banpush action of every jail: configured and
// loaded, configured and not loaded (the reload trap), loaded and no
// longer configured, or on a receiving jail (a loop).
func pushActions(ctx context.Context, cfg Fail2ban, running []string, configured []f2b.Jail) []Result {
	var out []Result
	pushing := 0
	for _, j := range configured {
		var names []string
		for _, a := range j.Actions {
			if a.Pushes() {
				names = append(names, a.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		pushing++
		if j.Name == JailFull || j.Name == JailQuorum || j.Name == JailFleet {
			out = append(out, result("push-action", j.Name, Fail,
				"remove the banpush action from the ["+j.Name+"] jail, then fail2ban-client reload --restart "+j.Name,
				"the receiving jail %s carries the banpush action: every ban a peer sends would be pushed back to every peer", j.Name))
			continue
		}
		if !slices.Contains(running, j.Name) {
			out = append(out, result("push-action", j.Name, Fail,
				"fail2ban-client reload "+j.Name+"; if it still does not run, fail2ban's log says why",
				"jail %s is configured with the banpush action but is not running", j.Name))
			continue
		}
		loaded, err := cfg.Client.Actions(ctx, j.Name)
		if err != nil {
			out = append(out, result("push-action", j.Name, Fail, "", "cannot list the actions of jail %s: %v", j.Name, err))
			continue
		}
		var missing []string
		for _, n := range names {
			if !slices.Contains(loaded, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			out = append(out, result("push-action", j.Name, Fail,
				"fail2ban-client reload --restart "+j.Name+" (or systemctl restart fail2ban); a plain reload does not help",
				"jail %s's configuration adds the action %s, but the running jail has not loaded it (actions: %s): fail2ban's reload trap, a reload drops an action newly added to a running jail (fail2ban issues #3860, #2716), so this jail's bans are not shared",
				j.Name, strings.Join(missing, ", "), listOrNone(loaded)))
			continue
		}
		out = append(out, result("push-action", j.Name, OK, "", "jail %s runs with the banpush action (%s)", j.Name, strings.Join(names, ", ")))
	}
	if configured != nil || pushing > 0 {
		// An action loaded by the running server that the configuration no
		// longer has goes away at the next restart.
		for _, jail := range running {
			if slices.ContainsFunc(configured, func(j f2b.Jail) bool { return j.Name == jail }) {
				continue
			}
			if acts, err := cfg.Client.Actions(ctx, jail); err == nil && slices.Contains(acts, "banpush") {
				out = append(out, result("push-action", jail, Warn, "fail2ban-client -t, then fix the configuration of jail "+jail,
					"the running jail %s has the banpush action, but fail2ban's configuration does not start this jail: the next restart drops it", jail))
			}
		}
	}
	if pushing == 0 {
		if cfg.Pusher {
			out = append(out, result("push-action", "", Warn, "add the action to the jails whose bans you share (docs/setup.md#step-10)",
				"no jail has the banpush action: this host shares none of its bans"))
		} else {
			out = append(out, result("push-action", "", Skip, "", "no jail has the banpush action and there is no inventory: this host does not push"))
		}
	}
	return out
}

// receivingJails checks that each receiving jail runs and watches the
// logs its authorized_keys lines write.
func receivingJails(ctx context.Context, cfg Fail2ban, running []string) []Result {
	if len(cfg.Receiving) == 0 {
		return []Result{result("receiving-jail", "", Skip, "", "no banpush line of the receiving account's authorized_keys names a log: no receiving jail to check")}
	}
	jails := make([]string, 0, len(cfg.Receiving))
	for j := range cfg.Receiving {
		jails = append(jails, j)
	}
	sort.Strings(jails)
	var out []Result
	for _, jail := range jails {
		conf := "contrib/fail2ban/jail.d/" + jail + ".conf"
		if !slices.Contains(running, jail) {
			out = append(out, result("receiving-jail", jail, Fail,
				"install "+conf+" in /etc/fail2ban/jail.d/ (enabled = true), then fail2ban-client reload; the bans peers send are written but never banned",
				"jail %s is not running", jail))
			continue
		}
		watched, err := cfg.Client.LogPaths(ctx, jail)
		if err != nil {
			out = append(out, result("receiving-jail", jail, Fail, "", "cannot read the logs jail %s watches: %v", jail, err))
			continue
		}
		var missing []string
		for _, log := range cfg.Receiving[jail] {
			if !slices.ContainsFunc(watched, func(w string) bool { return samePath(w, log) }) {
				missing = append(missing, log)
			}
		}
		if len(missing) > 0 {
			out = append(out, result("receiving-jail", jail, Fail,
				"make the jail's logpath and the lines' --log the same file, then fail2ban-client reload "+jail,
				"jail %s watches %s, but authorized_keys lines write %s", jail, listOrNone(watched), strings.Join(missing, ", ")))
			continue
		}
		out = append(out, result("receiving-jail", jail, OK, "", "jail %s runs and watches %s", jail, strings.Join(cfg.Receiving[jail], ", ")))
	}
	return out
}

// samePath reports whether a and b name the same file, links followed
// where they resolve.
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
