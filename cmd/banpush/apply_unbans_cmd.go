package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/unbanlog"
)

// receivingJails are contrib's receiving jails, the default of
// apply-unbans --jail: banpush-quorum only where fail2ban runs it.
var receivingJails = []string{"banpush", "banpush-quorum"}

// ApplyUnbansCmd applies the unbans the receiver wrote to its log.
type ApplyUnbansCmd struct {
	Log            string        `help:"The received log that 'banpush receive' writes; LOG.1, its last rotation, is read too." default:"/var/log/banpush/received.log" type:"path" placeholder:"PATH"`
	Jail           []string      `help:"Lift the bans in this jail; repeat for more (default: banpush, and banpush-quorum if fail2ban runs it)." placeholder:"NAME"`
	State          string        `help:"The cursor: where the last run stopped. Its directory must be root's alone (made 0700 if missing)." default:"/var/lib/banpush-apply-unbans/cursor" type:"path" placeholder:"PATH"`
	AllowPrivate   bool          `help:"Apply unbans of private (RFC 1918, RFC 4193) and CGNAT addresses from any peer. Without it, a peer's are applied where its receiver line in the account's authorized_keys has --allow-private, as the receiver took them."`
	Account        string        `help:"The receiving account, whose authorized_keys lines say which peers' unbans of private addresses to apply." default:"banpush" placeholder:"NAME"`
	AuthorizedKeys string        `name:"authorized-keys" help:"The receiving account's authorized_keys (default: ~ACCOUNT/.ssh/authorized_keys)." type:"path" placeholder:"FILE"`
	MaxAge         time.Duration `help:"Pass over unban lines written longer ago than this: an old unban could lift a newer ban (0: no bound)." default:"1h" placeholder:"DURATION"`
	Follow         bool          `help:"Keep running, reading the log again every --interval, until SIGTERM or SIGINT (for hosts without systemd)."`
	Interval       time.Duration `help:"With --follow, how often to read the log." default:"1s" placeholder:"DURATION"`
	JSON           bool          `name:"json" help:"Print what was applied as JSON (with --follow, one object a line for each run that read something)."`
}

// Help explains what apply-unbans applies, and from where.
func (c *ApplyUnbansCmd) Help() string {
	return `apply-unbans lifts, in the local fail2ban, the bans that peers took back
('banpush unban' on a peer whose key here may unban): the receiving account
cannot lift bans itself, so it writes an unban line to the received log, and
apply-unbans, run as root, reads the lines written since its cursor and runs
'fail2ban-client set JAIL unbanip ADDRESS' for each receiving jail.

Only unban lines of the exact shape the receiver writes are read; an address
is applied only if it is a plain, canonical IP address that this host would
accept a ban of, and lines written longer ago than --max-age are passed
over. Nothing else from the log reaches fail2ban. A private (or CGNAT)
address is applied with the policy the receiver had: where the line of its
peer in the account's authorized_keys (read as root reads the account's
files: through descriptors, never through a link) writes this log with
--allow-unban and --allow-private, or with --allow-private here. One that
neither takes is not passed over for good: it is held beside the cursor
(STATE.held) and tried again at every run until a setting takes it or it
is older than --max-age. A ban is lifted only if it started before the unban line was
written ('get JAIL banip --with-time'): a ban made since, a fresh detection
after the unban window, is not the one taken back and stays. Applying the
same line twice is harmless.

The cursor survives log rotation (logrotate's rename and create, or
copytruncate): the rest of LOG.1 is read first. It moves only past lines
whose unbans fail2ban took: when fail2ban is not running, apply-unbans exits
69 and the next run applies them. The first run (no cursor) reads LOG.1 and
the log from their start, applying what is within --max-age.

contrib/systemd/banpush-apply-unbans.path runs it whenever the log changes,
and banpush-apply-unbans.timer every minute in case a change came while it
ran. Exit status 0 when every line read was applied or passed over, 69 when
fail2ban did not answer or fail2ban-client is missing, 75 when another run
held the cursor or fail2ban-client failed otherwise (both: the next run
applies what is pending), 78 for a jail fail2ban does not run or a
--state in a directory others may change.`
}

// checkJailFlags refuses a --jail that is not a fail2ban jail name.
func checkJailFlags(jails []string) error {
	for _, j := range jails {
		if !f2b.ValidJail(j) || strings.HasPrefix(j, "-") {
			return errorf(exitUsage, "jail names are letters, digits and ._@:-", "--jail %q is not a jail name", record.Printable(j))
		}
	}
	return nil
}

// stateFile is a --state made absolute, its directory made (root's alone)
// if missing; the follower checks that nobody else may write there.
func stateFile(state string) (string, error) {
	abs, err := filepath.Abs(state)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", withHint(err, exitFailure, "check --state")
	}
	return abs, nil
}

// Run applies the unbans once, or until a signal with --follow.
func (c *ApplyUnbansCmd) Run(env *Env, g *Globals) error {
	if err := checkJailFlags(c.Jail); err != nil {
		return err
	}
	if c.Follow && c.Interval <= 0 {
		return errorf(exitUsage, "", "--interval must be positive")
	}
	log, err := filepath.Abs(c.Log)
	if err != nil {
		return err
	}
	state, err := stateFile(c.State)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client := &f2b.Client{Socket: g.Fail2banSocket}
	cfg := unbanlog.Config{Log: log, State: state, Policy: record.Policy{AllowPrivate: c.AllowPrivate}, MaxAge: c.MaxAge, Now: env.Now}

	var lastKeysErr string
	once := func(ctx context.Context) (unbanlog.Report, error) {
		// fail2ban is asked for its jails only when there is an unban to
		// apply: the path unit runs at every write to the log. The
		// receiver lines are read only for an address --allow-private
		// would take, again at every run.
		run := cfg
		run.JailsFunc = func(ctx context.Context) ([]string, error) { return c.jails(ctx, client) }
		run.Receivers = func() []unbanlog.Receiver {
			recv, err := c.receivers(log)
			if err != nil && err.Error() != lastKeysErr {
				printWarning(env.Stderr, "%v: unbans of private addresses are held until its lines can be read", err)
			}
			if err != nil {
				lastKeysErr = err.Error()
			} else {
				lastKeysErr = ""
			}
			return recv
		}
		return unbanlog.Apply(ctx, run, client)
	}
	if !c.Follow {
		rep, err := once(ctx)
		if perr := c.print(env, rep, true); perr != nil && err == nil {
			err = perr
		}
		return applyError(err, g.Fail2banSocket)
	}
	return logtail.Follow(ctx, c.Interval, func(ctx context.Context) error {
		rep, err := once(ctx)
		if perr := c.print(env, rep, false); perr != nil {
			return perr
		}
		err = applyError(err, g.Fail2banSocket)
		var u *userError
		if err != nil && ctx.Err() == nil && errors.As(err, &u) && (u.code == exitTemp || u.code == exitUnavailable) {
			// fail2ban stopped, or another run holds the cursor: later.
			printWarning(env.Stderr, "%s (trying again in %s)", err, c.Interval)
			return nil
		}
		return err
	})
}

// jails are the jails to lift bans in: --jail, or the receiving jails
// fail2ban runs, asked when the first unban is to be applied; a server
// that does not answer is found then, before any unban is run.
func (c *ApplyUnbansCmd) jails(ctx context.Context, client *f2b.Client) ([]string, error) {
	running, err := client.Jails(ctx)
	if err != nil {
		return nil, err
	}
	if len(c.Jail) > 0 {
		for _, j := range c.Jail {
			if !slices.Contains(running, j) {
				return nil, errorf(exitConfig, "the running jails are: "+fmt.Sprint(running)+"; give --jail one of them, or start the jail", "the running fail2ban has no jail %s", j)
			}
		}
		return c.Jail, nil
	}
	var jails []string
	for _, j := range receivingJails {
		if slices.Contains(running, j) {
			jails = append(jails, j)
		}
	}
	if len(jails) == 0 {
		return nil, errorf(exitConfig, "install contrib/fail2ban/jail.d/banpush.conf and reload fail2ban (docs/setup.md#step-4), or name the jails with --jail", "the running fail2ban has no receiving jail (banpush or banpush-quorum)")
	}
	return jails, nil
}

// receivers reads the receiving account's authorized_keys for the
// receiver lines that write log and let peers unban: whose unbans, and
// with which policy. Root reads the file through descriptors, as it reads
// everything of the account's (authkeys.ReadFile), and parses it as
// 'banpush receive' would: nothing in it is trusted beyond what a line
// could make the receiver accept anyway.
func (c *ApplyUnbansCmd) receivers(log string) ([]unbanlog.Receiver, error) {
	keys, err := accountKeys(c.Account, c.AuthorizedKeys)
	if err != nil {
		return nil, err
	}
	return unbanReceivers(keys, log), nil
}

// accountKeys reads the receiving account's authorized_keys (path, or
// ~account/.ssh/authorized_keys) as root reads the account's files:
// through descriptors, never through a link (authkeys.ReadFile).
func accountKeys(account, path string) ([]byte, error) {
	if path == "" {
		u, err := user.Lookup(account)
		if err != nil {
			return nil, fmt.Errorf("the receiving account %s: %w", account, err)
		}
		path = filepath.Join(u.HomeDir, ".ssh", "authorized_keys")
	}
	return authkeys.ReadFile(path)
}

// unbanReceivers are the receiver lines of authorized_keys (keys) that
// write the log at log with --allow-unban, as apply-unbans weighs them.
func unbanReceivers(keys []byte, log string) []unbanlog.Receiver {
	lines, _ := receive.ArgsFromKeys(keys)
	log = filepath.Clean(log)
	var out []unbanlog.Receiver
	for _, a := range lines {
		if filepath.Clean(a.Log) != log || !a.AllowUnban {
			continue
		}
		_, cfg, err := a.Check(time.Now)
		if err != nil {
			continue
		}
		out = append(out, unbanlog.Receiver{Peer: record.PeerID(a.Peer), AnyPeer: a.PeerFromCert, Policy: cfg.Policy})
	}
	return out
}

// applyError gives Apply's errors their exit code and hint.
func applyError(err error, socket string) error {
	var fe *f2b.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, f2b.ErrNotRunning):
		return withHint(fmt.Errorf("no fail2ban server answers at %s; the unbans not applied stay ahead of the cursor", socket), exitUnavailable,
			"start fail2ban (systemctl start fail2ban), or give its socket with --fail2ban-socket; the next run applies them")
	case errors.Is(err, exec.ErrNotFound):
		return withHint(fmt.Errorf("fail2ban-client is not installed; the unbans not applied stay ahead of the cursor"), exitUnavailable,
			"apt-get install fail2ban (or put fail2ban-client on PATH); the next run applies them")
	case errors.Is(err, logtail.ErrBusy):
		return withHint(err, exitTemp, "the next run applies what this one could not")
	case errors.Is(err, f2b.ErrNoJail):
		return withHint(err, exitConfig, "a jail stopped while apply-unbans ran: check 'fail2ban-client status'")
	case errors.Is(err, logtail.ErrUnsafeState):
		return withHint(err, exitConfig, "give --state a file in a directory of root's that nobody else can write, such as the default's")
	case errors.Is(err, logtail.ErrNoLog):
		return withHint(fmt.Errorf("no received log: %w", err), exitFailure, "check --log: the receiving account's log (docs/setup.md#step-1)")
	case errors.As(err, &fe):
		return withHint(err, exitTemp, "the next run tries these unbans again")
	}
	return err
}

// print writes the report: JSON, or a line per unban applied and a
// summary. With always unset (--follow), a run that read nothing prints
// nothing.
func (c *ApplyUnbansCmd) print(env *Env, rep unbanlog.Report, always bool) error {
	sk := rep.Skipped
	read := rep.Unbans + sk.Bad
	if !always && read == 0 {
		return nil
	}
	if rep.Applied == nil {
		rep.Applied = []unbanlog.Applied{}
	}
	if c.JSON {
		enc := json.NewEncoder(env.Stdout)
		if always {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	for _, a := range rep.Applied {
		what := "not banned"
		if a.Lifted {
			what = "lifted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tpeer=%s\n", a.Addr, a.Jail, what, a.Peer)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := rep.Calls - len(rep.Applied); n > 0 {
		fmt.Fprintf(env.Stdout, "... and %d more\n", n)
	}
	held := ""
	if rep.Held > 0 || sk.Held > 0 {
		held = fmt.Sprintf("; %d held for this host's settings (%d new)", rep.Held, sk.Held)
	}
	_, err := fmt.Fprintf(env.Stdout, "%d unban lines: %d bans lifted; passed over: %d malformed, %d older than --max-age, %d refused addresses, %d repeated; %d not banned, %d banned again since%s\n",
		rep.Unbans, rep.Lifted, sk.Bad, sk.Old, sk.Refused, sk.Duplicate, sk.NotBanned, sk.Newer, held)
	if err == nil && sk.Held > 0 {
		printWarning(env.Stderr, "%d unbans of private addresses held: neither --allow-private here nor the receiver line of their peer takes them", sk.Held)
		printHint(env.Stderr, "give the peers' lines in "+c.keysName()+" --allow-private where the fleet allows private addresses ('banpush authorize ... --allow-private --allow-unban --install', or setup-host.sh --allow-private); the held unbans are applied at the next run, within --max-age")
	}
	return err
}

// keysName names the account's authorized_keys in a message.
func (c *ApplyUnbansCmd) keysName() string {
	if c.AuthorizedKeys != "" {
		return c.AuthorizedKeys
	}
	return "~" + c.Account + "/.ssh/authorized_keys"
}
