package main

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/banpush/banpush/sshpush/account"
)

// SetupAccountCmd makes and mends, as root, the receiving account's files
// and the received log, through descriptors only (package account).
type SetupAccountCmd struct {
	Account  string `help:"The receiving account; it must exist (useradd makes it, as contrib/sshd/setup-receiver.sh does)." default:"banpush" placeholder:"NAME"`
	Log      string `help:"The received log, as the authorized_keys lines name it." default:"/var/log/banpush/received.log" placeholder:"PATH"`
	LogGroup string `name:"log-group" help:"The group that may read the log (default: adm if it exists, else the account's group)." placeholder:"GROUP"`
	Rotate   bool   `help:"logrotate's prerotate: close the log's directory to the account and lift the log's append-only attribute, so that logrotate can rename it. A plain setup-account (the postrotate) makes the new log and opens the directory again."`
}

// Help says what setup-account makes, and why through descriptors.
func (c *SetupAccountCmd) Help() string {
	return `Run as root, after useradd has made the account, and again whenever you like:
it changes only what is missing or wrong. contrib/sshd/setup-receiver.sh,
contrib/fleet/setup-host.sh and the banpush package run it.

It makes, where missing:
  ~ACCOUNT (0750), ~ACCOUNT/.ssh (0700) and an empty
  ~ACCOUNT/.ssh/authorized_keys (0600), the account's;
  the log's directory (/var/log/banpush), root's: the account's group may add
  its state files (LOG.state, LOG.sessions, ...), the sticky bit keeps it from
  removing or renaming what is not its own;
  the log, the account's, group adm, mode 0640 and append-only (chattr +a,
  where the file system has it): the account adds to its end, and can
  neither truncate it, write inside it or past its end (a sparse file),
  replace it, rename it nor change its mode.

A log the account could rewrite (the layout of earlier versions, or a log
the receiver made because it was missing) is moved aside to
LOG.replaced-TIME, and a new log takes its place. The rotated logs
(LOG.1, LOG.2.gz, ...) are given to root.

The account's home and ~/.ssh are directories the account can change, so
nothing there is done by path: each directory is opened without following a
link the account could have made, each file is made, chowned and chmodded
through its own descriptor, and nothing is read. A symbolic link where
~/.ssh or authorized_keys should be is refused. While root works in the
log's directory, it is closed to the account (mode 1700), so that the
account never holds a descriptor of a log that is not yet append-only.

logrotate (contrib/logrotate.d/banpush) runs 'setup-account --rotate' as its
prerotate and 'setup-account' as its postrotate.

Examples:
  banpush setup-account
  banpush setup-account --account banpush --log /var/log/banpush/received.log`
}

// Run sets up the account's files, or begins a rotation.
func (c *SetupAccountCmd) Run(env *Env) error {
	if !filepath.IsAbs(c.Log) {
		return errorf(exitUsage, "give the full path, e.g. /var/log/banpush/received.log", "--log must be an absolute path")
	}
	if os.Geteuid() != 0 {
		return errorf(exitFailure, "run it as root (sudo banpush setup-account)", "setup-account gives files to the account: it needs root")
	}
	u, err := user.Lookup(c.Account)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return errorf(exitFailure, "make it first, as contrib/sshd/setup-receiver.sh does: useradd --system --user-group --home-dir /var/lib/"+c.Account+" --shell /bin/sh "+c.Account,
			"no account %s", c.Account)
	} else if err != nil {
		return errorf(exitFailure, "", "looking up the account %s: %v", c.Account, err)
	}
	a := account.Account{Name: c.Account, Home: u.HomeDir}
	a.UID, _ = strconv.Atoi(u.Uid)
	a.GID, _ = strconv.Atoi(u.Gid)
	if a.UID == 0 {
		return errorf(exitUsage, "the receiving account is an unprivileged account of its own (banpush)", "the account %s is root", c.Account)
	}
	logGID, err := c.logGID(a)
	if err != nil {
		return err
	}
	l := account.Log{Path: filepath.Clean(c.Log), Account: a, GID: logGID, Now: env.Now}

	var r account.Report
	defer func() {
		for _, n := range r.Notes {
			printNote(env.Stderr, "%s", n)
		}
		for _, w := range r.Warnings {
			printWarning(env.Stderr, "%s", w)
		}
	}()
	if c.Rotate {
		if err := account.BeginRotation(l, &r); err != nil {
			return withHint(err, exitFailure, "run 'banpush setup-account' (it opens the directory again and makes the log)")
		}
		return nil
	}
	if g, err := user.LookupGroupId(strconv.Itoa(a.GID)); err == nil && g.Name != a.Name {
		r.Warnings = append(r.Warnings, "the account's group "+g.Name+" may be other accounts' group too, and they may add files to "+filepath.Dir(l.Path)+": give "+a.Name+" a group of its own (useradd --user-group)")
	}
	// The log first: a logrotate postrotate must open the directory again
	// whatever the home holds.
	logErr := account.SetupLog(l, &r)
	homeErr := account.SetupHome(a, &r)
	switch {
	case logErr != nil:
		return withHint(logErr, exitFailure, "fix what it names, then run 'banpush setup-account' again")
	case homeErr != nil:
		return withHint(homeErr, exitFailure, "fix what it names, then run 'banpush setup-account' again")
	}
	return nil
}

// logGID is the group that may read the log: --log-group, else adm, else
// the account's own.
func (c *SetupAccountCmd) logGID(a account.Account) (int, error) {
	name := c.LogGroup
	if name == "" {
		name = "adm"
	}
	g, err := user.LookupGroup(name)
	switch {
	case err == nil:
		return strconv.Atoi(g.Gid)
	case c.LogGroup != "":
		return 0, errorf(exitUsage, "give a group that exists, e.g. adm", "--log-group %s: %v", c.LogGroup, err)
	}
	return a.GID, nil
}
