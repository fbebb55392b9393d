package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/banpush/banpush/sshpush/record"
)

// Peer is one peer of the inventory, as the command resolved it.
type Peer struct {
	Name     string
	HostName string // "" when Err is set
	Err      error  // its settings cannot be resolved
}

// CheckInventory checks that the inventory parsed (loadErr, with
// fs.ErrNotExist for a host that pushes to no one) and that every peer's
// settings resolve and its HostName resolves to an address (lookup).
func CheckInventory(ctx context.Context, path string, loadErr error, peers []Peer, lookup func(ctx context.Context, host string) error) []Result {
	switch {
	case errors.Is(loadErr, fs.ErrNotExist):
		return []Result{result("inventory", "", Skip, "", "%s does not exist: this host pushes to no one", path)}
	case loadErr != nil:
		return []Result{result("inventory", "", Fail, "fix the peers file; 'ssh -G -F "+path+" NAME' shows how ssh reads it", "%v", loadErr)}
	case len(peers) == 0:
		return []Result{result("inventory", "", Warn, "add peers with 'banpush peers add NAME --host HOST'", "%s has no peers", path)}
	}
	var out []Result
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
		if p.Err != nil {
			out = append(out, result("inventory", p.Name, Fail, "fix its Host block; 'banpush peers list' shows what banpush uses", "%v", p.Err))
			continue
		}
		if _, err := netip.ParseAddr(p.HostName); err == nil {
			continue
		}
		if err := lookup(ctx, p.HostName); err != nil {
			out = append(out, result("inventory", p.Name, Fail, "fix its HostName, or the resolver (/etc/hosts, DNS): the sender resolves it at every connection",
				"HostName %s does not resolve: %v", p.HostName, err))
		}
	}
	if len(out) == 0 {
		n := fmt.Sprintf("%d peers", len(peers))
		if len(peers) == 1 {
			n = "1 peer"
		}
		out = append(out, result("inventory", "", OK, "", "%s: %s (%s), each resolves", path, n, strings.Join(names, ", ")))
	}
	return out
}

// CheckSpool checks the spool directory: owned by the account banpush runs
// as (euid) and writable by it alone, since whoever can write it can make
// this host push bans.
func CheckSpool(dir string, euid int, pusher bool) Result {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !pusher:
		return result("spool", "", Skip, "", "%s does not exist and this host has no inventory", dir)
	case errors.Is(err, fs.ErrNotExist):
		return result("spool", "", Warn, "'banpush push' creates it (0700); run 'banpush flush' once as root to create it now", "%s does not exist yet", dir)
	case err != nil:
		return result("spool", "", Fail, "", "%v", err)
	case !fi.IsDir():
		return result("spool", "", Fail, "remove it, or give another --spool (BANPUSH_SPOOL)", "%s is not a directory", dir)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case st != nil && st.Uid == 0 && euid != 0:
		// fail2ban runs banpush as root: the spool is root's, and doctor
		// run by another account cannot judge it.
		return result("spool", "", Warn, asRoot,
			"%s belongs to root, as banpush under fail2ban makes it; doctor runs as uid %d and cannot check it", dir, euid)
	case st != nil && int(st.Uid) != euid:
		return result("spool", "", Fail, fmt.Sprintf("chown -R %d %s (banpush runs as uid %d under fail2ban)", euid, dir, euid),
			"%s belongs to uid %d, not to uid %d that runs banpush", dir, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return result("spool", "", Fail, "chmod 700 "+dir, "%s is writable by group or others (mode %04o): they could make this host push bans", dir, fi.Mode().Perm())
	case fi.Mode().Perm()&0o077 != 0:
		return result("spool", "", Warn, "chmod 700 "+dir, "%s is readable by group or others (mode %04o)", dir, fi.Mode().Perm())
	}
	return result("spool", "", OK, "", "%s: owner uid %d, mode %04o", dir, euid, fi.Mode().Perm())
}

// asRoot is the hint for what only root can check.
const asRoot = "run doctor as root (sudo banpush doctor): banpush runs as root under fail2ban, and only root can read what it checks"

// CheckPrivileges warns when doctor does not run as root (euid): it then
// cannot read the spool, sshd's settings or the receiving account's files,
// and the checks of those fail or are skipped for that reason alone.
func CheckPrivileges(euid int) []Result {
	if euid == 0 {
		return nil
	}
	return []Result{result("privileges", "", Warn, asRoot,
		"doctor runs as uid %d, not root: what only root can read (the spool, sshd's settings, the receiving account's authorized_keys) cannot be checked, and those checks may fail for that alone", euid)}
}

// FlushTimer is the systemd unit that runs 'banpush flush'.
const FlushTimer = "banpush-flush.timer"

// ApplyUnbansPath is the systemd unit that runs 'banpush apply-unbans'
// when the received log changes.
const ApplyUnbansPath = "banpush-apply-unbans.path"

// ReportFailuresService is the systemd unit that runs 'banpush
// report-failures'.
const ReportFailuresService = "banpush-report-failures.service"

// CheckReportFailures checks, on a host where some pushing peer's failure
// reports count (--fleet), that this host reports its own: without the
// reporter, its failures count nowhere, not even here.
func CheckReportFailures(ctx context.Context, run Runner, systemd, fleet bool) Result {
	switch {
	case !fleet:
		return result("report-failures", "", Skip, "", "no authorized_keys line here has --fleet")
	case !systemd:
		return result("report-failures", "", Skip, "", "systemd is not running here: run 'banpush report-failures' as root some other way, or this host's failures count nowhere")
	}
	return checkUnit(ctx, run, "report-failures", ReportFailuresService,
		"cp contrib/systemd/"+ReportFailuresService+" /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now "+ReportFailuresService,
		"the failures this host's fail2ban sees count nowhere, not even here")
}

// CheckFlushTimer checks that the flush timer is enabled and active where
// systemd runs (systemd: /run/systemd/system exists).
func CheckFlushTimer(ctx context.Context, run Runner, systemd, pusher bool) Result {
	switch {
	case !pusher:
		return result("flush-timer", "", Skip, "", "this host does not push")
	case !systemd:
		return result("flush-timer", "", Skip, "", "systemd is not running here: run 'banpush flush' every minute some other way (cron)")
	}
	return checkUnit(ctx, run, "flush-timer", FlushTimer,
		"cp contrib/systemd/banpush-flush.* /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now "+FlushTimer,
		"bans queued while a peer was down wait for the next push")
}

// CheckApplyUnbans checks, on a host where some pushing peer may unban
// (--allow-unban), that apply-unbans runs when the received log changes:
// without it, the unbans are written and never applied.
func CheckApplyUnbans(ctx context.Context, run Runner, systemd, unbans bool) Result {
	switch {
	case !unbans:
		return result("apply-unbans", "", Skip, "", "no authorized_keys line here has --allow-unban")
	case !systemd:
		return result("apply-unbans", "", Skip, "", "systemd is not running here: run 'banpush apply-unbans --follow' as root some other way, or the unbans peers send are never applied")
	}
	return checkUnit(ctx, run, "apply-unbans", ApplyUnbansPath,
		"cp contrib/systemd/banpush-apply-unbans.* /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now "+ApplyUnbansPath+" banpush-apply-unbans.timer",
		"the unbans peers send are written to the log and never applied")
}

// checkUnit checks that a systemd unit is enabled and active; what is
// the consequence when it is not.
func checkUnit(ctx context.Context, run Runner, check, unit, hint, what string) Result {
	enabled, _ := run(ctx, "systemctl", "is-enabled", unit)
	active, _ := run(ctx, "systemctl", "is-active", unit)
	e, a := firstWord(enabled), firstWord(active)
	if e != "enabled" || a != "active" {
		return result(check, "", Fail, hint, "%s is %s and %s: %s", unit, orUnknown(e), orUnknown(a), what)
	}
	return result(check, "", OK, "", "%s is enabled and active", unit)
}

func firstWord(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return record.Printable(f[0])
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
