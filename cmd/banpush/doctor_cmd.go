package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/banpush/banpush/inventory"
	"github.com/banpush/banpush/sshpush/doctor"
	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/roster"
)

// DoctorCmd checks this host's setup.
type DoctorCmd struct {
	JSON           bool   `name:"json" help:"Print the checks as a JSON array."`
	Account        string `help:"The receiving account." default:"banpush" placeholder:"NAME"`
	AuthorizedKeys string `name:"authorized-keys" help:"The receiving account's authorized_keys (default: ~ACCOUNT/.ssh/authorized_keys)." type:"path" placeholder:"FILE"`
	Fail2banConfig string `name:"fail2ban-config" help:"fail2ban's configuration directory, read as a start or reload would (fail2ban-client -c DIR -d)." default:"${fail2ban_config}" type:"path" placeholder:"DIR"`
	SSHDConfig     string `name:"sshd-config" help:"sshd's configuration file (default: sshd's own)." type:"path" placeholder:"FILE"`
	FirewallState  string `name:"firewall-state" help:"The cursor of 'banpush firewall' (its --state), beside which it keeps the bans in force." default:"${firewall_state}" type:"path" placeholder:"PATH"`
}

// Help lists the checks.
func (c *DoctorCmd) Help() string {
	return `doctor checks this host as a pusher and as a receiver, and prints one line per
check: ok, warn, fail or skip (does not apply to this host), what it found,
and what to do about it. It changes nothing and contacts no peer ('banpush
peers check' does).

As a pusher (the inventory exists):
  inventory        it parses, and every peer's HostName resolves
  spool            owned by the account running banpush, writable by it alone
  push-action      each jail whose configuration adds the banpush action has
                   it loaded in the running fail2ban ('get JAIL actions'). A
                   reload drops an action newly added to a running jail
                   (fail2ban's reload trap): 'fail2ban-client reload
                   --restart JAIL' loads it
  flush-timer      banpush-flush.timer is enabled and active (where systemd runs)
As a receiver (the account's authorized_keys has banpush lines, or the
inventory names this host, so that its peers push to it):
  account          a login shell, not locked
  authorized-keys  each banpush line is restricted, names an executable and
                   valid 'receive' arguments, and a log the account can append to
                   (the file is read through descriptors: no link the account
                   made is followed); a host the inventory names has a line
  received-log     each log is append-only in a directory of root's, so that
                   the account can only append to it ('banpush setup-account')
  received-lines   what the end of each log last received, and when; warns
                   when lines there are not ones that banpush writes
  receiving-jail   the banpush jail (and banpush-quorum, for --trust quorum
                   lines, and banpush-fleet, for --fleet lines) runs and
                   watches the log the lines write
  sshd             'sshd -T -C user=ACCOUNT' forbids forwarding and ttys
                   (and exposes auth info for cert-authority lines), and the
                   RevokedKeys file it names is a KRL sshd can read
  quorum           the --trust quorum lines of one log agree on --quorum and
                   --quorum-window
  fleet            the --fleet lines of one log agree on the fleet policy
  apply-unbans     where a line has --allow-unban, banpush-apply-unbans.path
                   is enabled and active (where systemd runs)
  report-failures  where a line has --fleet, banpush-report-failures.service
                   is enabled and active (where systemd runs)
  ban-path         for each receiving jail the lines feed, who bans its lines:
                   fail2ban's action or 'banpush firewall' (the fast path);
                   warns when both do (twice), fails when neither does
  firewall         where the fast path is used, banpush-firewall.service is
                   active (or a 'banpush firewall' runs)
  firewall-set     the kernel set (table inet banpush) exists and holds the
                   bans of the fast path's state, no more, no fewer
Either way:
  fail2ban         a fail2ban server answers at --fail2ban-socket

fail2ban is asked through --fail2ban-socket. Run doctor as root (as another
user it says so first), as the last step of setup and after every change.
Exit status 0 when no check failed, 4 when one did.`
}

// Run runs the checks and prints them.
func (c *DoctorCmd) Run(env *Env, g *Globals) error {
	ctx := context.Background()
	var rs []doctor.Result

	// Pusher.
	inv, invErr := inventory.Load(g.Inventory)
	if errors.Is(invErr, inventory.ErrNotExist) {
		invErr = os.ErrNotExist
	}
	pusher := invErr == nil || !errors.Is(invErr, os.ErrNotExist)
	var peers []doctor.Peer
	// expected says why this host must receive: its peers' inventory (the
	// same file on every host of a fleet) names it, so they push to it.
	var expected string
	if invErr == nil {
		r, err := roster.NewResolver(inv, env.Getenv)
		if err != nil {
			return err
		}
		hostNames := map[string]string{}
		for _, p := range inv.Peers() {
			s, err := r.Settings(p.Name)
			dp := doctor.Peer{Name: p.Name, Err: err}
			if err == nil {
				dp.HostName = s.HostName
				hostNames[p.Name] = s.HostName
			}
			peers = append(peers, dp)
		}
		if self := roster.FindSelf(inv, g.Self, hostNames, roster.LocalAddrs); len(self) > 0 {
			expected = fmt.Sprintf("this host is %s in the inventory %s (%s), so its peers push to it", self[0].Name, g.Inventory, self[0].Reason)
		}
	}
	rs = append(rs, doctor.CheckPrivileges(os.Geteuid())...)
	rs = append(rs, doctor.CheckInventory(ctx, g.Inventory, invErr, peers, lookupHost)...)
	rs = append(rs, doctor.CheckSpool(g.Spool, os.Geteuid(), pusher))

	// Receiver.
	acct, acctErr := doctor.LookupAccount(c.Account, "/etc/passwd", "/etc/shadow")
	rs = append(rs, doctor.CheckAccount(c.Account, acct, acctErr, expected))
	var recv []doctor.Receiver
	keys := c.AuthorizedKeys
	if keys == "" && acctErr == nil {
		keys = filepath.Join(acct.Home, ".ssh", "authorized_keys")
	}
	if keys != "" {
		var krs []doctor.Result
		krs, recv = doctor.CheckAuthorizedKeys(doctor.Keys{Path: keys, Account: acct, Expected: expected})
		rs = append(rs, krs...)
	}

	// fail2ban, for both.
	client := &f2b.Client{Socket: g.Fail2banSocket}
	rs = append(rs, doctor.CheckFail2ban(ctx, doctor.Fail2ban{
		Client: client, Socket: g.Fail2banSocket, ConfigDir: c.Fail2banConfig,
		Pusher: pusher, Receiving: doctor.ReceivingJails(recv),
	})...)

	if len(recv) > 0 || expected != "" {
		authInfo := false
		for _, r := range recv {
			authInfo = authInfo || r.FromCert
		}
		rs = append(rs, doctor.CheckSSHD(ctx, doctor.Exec, doctor.SSHD{Config: c.SSHDConfig, Account: c.Account, AuthInfo: authInfo}))
	} else {
		rs = append(rs, doctor.Result{Check: "sshd", Status: doctor.Skip, Found: "this host does not receive"})
	}
	_, err := os.Stat("/run/systemd/system")
	rs = append(rs, doctor.CheckFlushTimer(ctx, doctor.Exec, err == nil, pusher))
	rs = append(rs, doctor.CheckApplyUnbans(ctx, doctor.Exec, err == nil, slices.ContainsFunc(recv, func(r doctor.Receiver) bool { return r.Unban })))
	rs = append(rs, doctor.CheckReportFailures(ctx, doctor.Exec, err == nil, slices.ContainsFunc(recv, func(r doctor.Receiver) bool { return r.Fleet })))
	rs = append(rs, doctor.CheckFirewall(ctx, c.firewall(ctx, client, recv, err == nil, env))...)

	if err := printDoctor(env, rs, c.JSON); err != nil {
		return err
	}
	if doctor.Failed(rs) {
		return silentExit(exitDoctor)
	}
	return nil
}

// firewall gathers what the fast path's checks look at.
func (c *DoctorCmd) firewall(ctx context.Context, client *f2b.Client, recv []doctor.Receiver, systemd bool, env *Env) doctor.Firewall {
	fw := doctor.Firewall{Systemd: systemd, Run: doctor.Exec, Receiving: doctor.ReceivingJails(recv)}
	if len(fw.Receiving) > 0 {
		fw.Settings, fw.SettingsErr = client.Settings(ctx, c.Fail2banConfig)
	}
	if _, err := os.Stat(filepath.Dir(c.FirewallState)); err == nil {
		st, err := inspectFirewall(c.FirewallState, env.Now())
		fw.Status, fw.StatusErr = &st, err
	}
	return fw
}

func lookupHost(ctx context.Context, host string) error {
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	return err
}

func printDoctor(env *Env, rs []doctor.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		name := r.Check
		if r.Subject != "" {
			name += " " + oneLine(r.Subject)
		}
		line := oneLine(r.Found)
		if r.Hint != "" {
			line += "; hint: " + oneLine(r.Hint)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, name, strings.TrimSpace(line))
	}
	return tw.Flush()
}
