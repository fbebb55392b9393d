package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/receive"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Account is the receiving account.
type Account struct {
	Name   string
	UID    int
	GID    int
	Groups []int // every group it is in, its primary group included
	Home   string
	Shell  string
	Locked bool // its password field starts with '!': sshd refuses its keys without PAM
}

// LookupAccount reads the account name from the user database, its shell
// from passwd and whether it is locked from shadow (files that cannot be
// read leave those fields empty).
func LookupAccount(name, passwd, shadow string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	a := Account{Name: name, Home: u.HomeDir}
	a.UID, _ = strconv.Atoi(u.Uid)
	a.GID, _ = strconv.Atoi(u.Gid)
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				a.Groups = append(a.Groups, n)
			}
		}
	}
	if !slices.Contains(a.Groups, a.GID) {
		a.Groups = append(a.Groups, a.GID)
	}
	if f := field(passwd, name, 6); f != "" {
		a.Shell = f
	}
	a.Locked = strings.HasPrefix(field(shadow, name, 1), "!")
	return a, nil
}

// field returns field i of name's line in a colon-separated file.
func field(path, name string, i int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) > i && fs[0] == name {
			return fs[i]
		}
	}
	return ""
}

// CheckAccount checks that the receiving account can run forced commands:
// a real login shell (sshd runs them through it) and not locked. expected
// says why this host must receive ("" if nothing says it must): then a
// missing account fails instead of being skipped.
func CheckAccount(name string, a Account, err error, expected string) Result {
	var unknown user.UnknownUserError
	switch {
	case errors.As(err, &unknown) && expected != "":
		return result("account", name, Fail, "contrib/sshd/setup-receiver.sh makes it ("+fleetScript+" runs it); "+notReceiving,
			"no account %s, but %s: every push to this host is refused", name, expected)
	case errors.As(err, &unknown):
		return result("account", name, Skip, "", "no account %s: this host does not receive (contrib/sshd/setup-receiver.sh makes one; --account names another)", name)
	case err != nil:
		return result("account", name, Fail, "", "cannot look up account %s: %v", name, err)
	case a.Shell == "" || strings.HasSuffix(a.Shell, "/nologin") || strings.HasSuffix(a.Shell, "/false"):
		return result("account", name, Fail, "usermod -s /bin/sh "+name,
			"account %s has the shell %q: sshd runs forced commands through the login shell, so no banpush line can run", name, a.Shell)
	case a.Locked:
		return result("account", name, Fail, "usermod -p '*' "+name,
			"account %s is locked ('!' in /etc/shadow): without PAM, sshd refuses even its keys", name)
	}
	return result("account", name, OK, "", "account %s: uid %d, shell %s, home %s", name, a.UID, a.Shell, a.Home)
}

// What to do on a host that must receive and cannot.
const (
	fleetScript  = "contrib/fleet/setup-host.sh"
	notReceiving = "if this host should not receive, take it out of the inventory its peers use"
	receiveHint  = "on a certificate fleet, run " + fleetScript + " on this host again (docs/fleet.md): it writes the cert-authority line; " +
		"with a key per peer, 'banpush authorize --peer NAME ... --install FILE' for each pushing peer; " + notReceiving
)

// Receiver is what one banpush line's arguments say, as the command's
// parser of 'banpush receive' read them.
type Receiver struct {
	Log      string
	Quorum   bool // --trust quorum: its reports count toward a quorum
	FromCert bool // --peer-from-cert: sshd must expose auth info
	Unban    bool // --allow-unban: apply-unbans must run

	// With Quorum: the distinct peers needed (--quorum) and how long a
	// report counts (--quorum-window).
	QuorumPeers  int
	QuorumWindow time.Duration

	// Fleet: --fleet, the peer's failure reports count toward fleet
	// bans, with this policy ("--fleet-failures T --fleet-hosts K
	// --fleet-window W").
	Fleet       bool
	FleetPolicy string
}

// Keys says what CheckAuthorizedKeys looks at.
type Keys struct {
	Path    string // the account's authorized_keys
	Account Account
	// Expected says why this host must receive ("this host is h2 in the
	// inventory ..."), or "" if nothing says it must: then a file without
	// a banpush line fails instead of being skipped.
	Expected string
	// Parse checks the arguments of a line's forced command after the
	// program ("receive", ...); nil means ParseReceiver, as 'banpush
	// receive' reads them.
	Parse func(args []string) (Receiver, error)
	// Now is the time the received logs' last lines are measured from;
	// nil means time.Now.
	Now func() time.Time
}

// ParseReceiver reads a receive line's arguments (after the program:
// "receive", ...) as 'banpush receive' does (receive.ParseArgs).
func ParseReceiver(args []string) (Receiver, error) {
	a, err := receive.ParseArgs(args)
	if err != nil {
		return Receiver{}, err
	}
	r := Receiver{Log: a.Log, Quorum: a.Trust == receive.TrustQuorum, FromCert: a.PeerFromCert,
		Unban: a.AllowUnban, QuorumPeers: a.Quorum, QuorumWindow: a.QuorumWindow, Fleet: a.Fleet}
	if a.Fleet {
		r.FleetPolicy = fmt.Sprintf("--fleet-failures %d --fleet-hosts %d --fleet-window %s", a.FleetFailures, a.FleetHosts, a.FleetWindow)
	}
	return r, nil
}

// CheckAuthorizedKeys checks every banpush line of the receiving
// account's authorized_keys: restricted, a forced command naming an
// executable the account can run, valid arguments, and a log the account
// can append to. It returns the receivers that the lines whose arguments
// parse configure, whatever else is wrong with them: the checks of their
// jails, logs and units still apply.
func CheckAuthorizedKeys(cfg Keys) ([]Result, []Receiver) {
	// Doctor runs as root and the file is the account's: read it as
	// 'authorize --install' does, never through a link the account made,
	// never another account's file under a second name.
	data, err := authkeys.ReadFile(cfg.Path)
	switch {
	case errors.Is(err, os.ErrNotExist) && cfg.Expected != "":
		return []Result{result("authorized-keys", "", Fail, receiveHint,
			"%s does not exist, but %s: every push to this host is refused", cfg.Path, cfg.Expected)}, nil
	case errors.Is(err, os.ErrNotExist):
		return []Result{result("authorized-keys", "", Skip, "", "%s does not exist: this host does not receive", cfg.Path)}, nil
	}
	if err != nil {
		return []Result{result("authorized-keys", "", Fail,
			"make it a plain file of the account's, in a directory of its own, and give doctor its real path (banpush setup-account)",
			"%v", err)}, nil
	}
	var out, unforced []Result
	var recv []Receiver
	banpush := 0
	for n, line := range bytes.Split(data, []byte("\n")) {
		subject := "line " + strconv.Itoa(n+1)
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		_, _, opts, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			out = append(out, result("authorized-keys", subject, Warn, "sshd ignores this line; fix or remove it", "not a key line sshd can use"))
			continue
		}
		cmd, hasCmd := authkeys.Option(opts, "command")
		if !hasCmd {
			unforced = append(unforced, result("authorized-keys", subject, Fail,
				"give this key a forced command or remove it from the receiving account",
				"a key without a forced command: it logs in with a shell and can rewrite this file"))
			continue
		}
		argv, err := authkeys.SplitCommand(cmd)
		if err != nil || len(argv) < 2 || (filepath.Base(argv[0]) != "banpush" && argv[1] != "receive") {
			continue // some other forced command
		}
		banpush++
		r, parsed, res := checkLine(cfg, subject, opts, argv)
		out = append(out, res)
		if parsed {
			recv = append(recv, r)
		}
	}
	if banpush > 0 {
		out = append(out, unforced...)
	}
	out = append(out, checkQuorums(recv)...)
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	out = append(out, checkLogs(recv, cfg.Account, now())...)
	switch {
	case banpush == 0 && cfg.Expected != "":
		out = append(out, result("authorized-keys", "", Fail, receiveHint,
			"%s has no banpush line, but %s: every push to this host is refused", cfg.Path, cfg.Expected))
	case banpush == 0:
		out = append(out, result("authorized-keys", "", Skip, "", "%s has no banpush line: this host does not receive", cfg.Path))
	}
	return out, recv
}

// checkQuorums warns when the quorum lines of one log disagree on
// --quorum or --quorum-window, or its fleet lines on the fleet policy:
// each report is counted with the settings of the line it came through, so
// a quorum or a fleet ban then depends on who reports last.
func checkQuorums(recv []Receiver) []Result {
	out := disagree(recv, "quorum", "--trust quorum", "--quorum and --quorum-window", func(r Receiver) string {
		if !r.Quorum {
			return ""
		}
		return fmt.Sprintf("--quorum %d --quorum-window %s", r.QuorumPeers, r.QuorumWindow)
	})
	return append(out, disagree(recv, "fleet", "--fleet", "--fleet-failures, --fleet-hosts and --fleet-window", func(r Receiver) string {
		return r.FleetPolicy
	})...)
}

// disagree warns, for each log, when the lines of one kind (setting gives
// a line's settings, "" for a line of another kind) disagree.
func disagree(recv []Receiver, check, kind, flags string, setting func(Receiver) string) []Result {
	settings := map[string][]string{} // log -> distinct settings
	var logs []string
	for _, r := range recv {
		s := setting(r)
		if s == "" {
			continue
		}
		if _, ok := settings[r.Log]; !ok {
			logs = append(logs, r.Log)
		}
		if !slices.Contains(settings[r.Log], s) {
			settings[r.Log] = append(settings[r.Log], s)
		}
	}
	var out []Result
	for _, log := range logs {
		if s := settings[log]; len(s) > 1 {
			out = append(out, result(check, log, Warn,
				"give every "+kind+" line of one log the same "+flags+" ('banpush authorize ... --install' rewrites a line)",
				"the %s lines of %s disagree: %s", check, log, strings.Join(s, "; ")))
		}
	}
	return out
}

const regen = "write the line again with 'banpush authorize ... --install' (see 'banpush authorize --help')"

// checkLine checks one banpush line. It returns what its arguments say
// whenever they parse (parsed), even if something else is wrong with it.
func checkLine(cfg Keys, subject string, opts, argv []string) (r Receiver, parsed bool, res Result) {
	parse := cfg.Parse
	if parse == nil {
		parse = ParseReceiver
	}
	r, perr := parse(argv[1:])
	parsed = perr == nil
	fail := func(hint, format string, args ...any) (Receiver, bool, Result) {
		return r, parsed, result("authorized-keys", subject, Fail, hint, format, args...)
	}
	if !slices.Contains(opts, "restrict") && !(slices.Contains(opts, "no-pty") && slices.Contains(opts, "no-port-forwarding") &&
		slices.Contains(opts, "no-agent-forwarding") && slices.Contains(opts, "no-X11-forwarding")) {
		return fail(regen, "the key is not restricted (no restrict, or no-pty and the no-*-forwarding options): it may forward ports or get a tty")
	}
	bin := argv[0]
	if !filepath.IsAbs(bin) {
		return fail(regen+"; --binary takes the absolute path", "the forced command %s is not an absolute path", bin)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return fail("install banpush at "+bin+", or "+regen+" with --binary PATH", "the forced command %s: %v", bin, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() || !may(fi, cfg.Account, 0o1) {
		return fail("chmod 755 "+bin, "%s is not a file account %s can execute (mode %04o)", bin, cfg.Account.Name, fi.Mode().Perm())
	}
	if perr != nil {
		return fail(regen, "the arguments of %s: %v", bin, perr)
	}
	if why := appendable(r.Log, cfg.Account); why != "" {
		return fail("banpush setup-account --account "+cfg.Account.Name+" --log "+r.Log+" makes it",
			"account %s cannot append to the log %s: %s", cfg.Account.Name, r.Log, why)
	}
	what := "peer"
	if r.FromCert {
		what = "cert-authority"
	}
	if r.Quorum {
		what += ", --trust quorum"
	}
	if r.Fleet {
		what += ", " + r.FleetPolicy
	}
	res = result("authorized-keys", subject, OK, "", "%s receiver (%s), log %s", what, bin, r.Log)
	if _, ok := authkeys.Option(opts, "from"); !ok && !r.FromCert {
		res.Status = Warn
		res.Found += "; no from= option: the key works from any address"
		res.Hint = "pin the key to the pushing host's addresses with 'banpush authorize --from CIDR ...'"
	}
	return r, parsed, res
}

// may reports whether the account has permission bit (1 execute, 2 write,
// 4 read) on a file, as the kernel decides for an unprivileged account.
func may(fi os.FileInfo, a Account, bit os.FileMode) bool {
	if a.UID == 0 {
		return bit != 1 || fi.Mode().Perm()&0o111 != 0 || fi.IsDir()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == a.UID:
		return perm&(bit<<6) != 0
	case slices.Contains(a.Groups, int(st.Gid)):
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

// checkLogs checks that the account can only append to each log the
// valid lines write, and reads the end of each (CheckReceivedLines).
func checkLogs(recv []Receiver, a Account, now time.Time) []Result {
	var out []Result
	var seen []string
	for _, r := range recv {
		if slices.Contains(seen, r.Log) {
			continue
		}
		seen = append(seen, r.Log)
		if why := unprotected(r.Log, a); why != "" {
			out = append(out, result("received-log", r.Log, Warn,
				"banpush setup-account --account "+a.Name+" --log "+r.Log+" makes it append-only, in a directory of root's",
				"%s: account %s can rewrite the log (fail2ban reads a line of any length: a sparse file exhausts its memory)", why, a.Name))
		} else {
			out = append(out, result("received-log", r.Log, OK, "", "append-only, in a directory of root's: account %s can only append to it", a.Name))
		}
		out = append(out, CheckReceivedLines(r.Log, now))
	}
	return out
}

// unprotected says why the account could do more to the log than append
// to it, or "" if it cannot: its directory must be root's and the log
// append-only, as 'banpush setup-account' makes them.
func unprotected(log string, a Account) string {
	d, err := fsutil.OpenDir(filepath.Dir(log))
	if err != nil {
		return errors.Unwrap(err).Error()
	}
	defer d.Close()
	st, err := d.Stat()
	if err != nil {
		return err.Error()
	}
	if st.Uid != 0 {
		return "its directory is not root's"
	}
	f, _, err := d.Open(filepath.Base(log), unix.O_RDONLY)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	switch ao, err := fsutil.AppendOnly(f); {
	case errors.Is(err, fsutil.ErrNoAttributes):
		return "the file system has no append-only attribute"
	case err != nil:
		return err.Error()
	case !ao:
		return "it is not append-only"
	}
	return ""
}

// appendable says why the account cannot open log for appending and keep
// its rate-limit state beside it, or "" if it can.
func appendable(log string, a Account) string {
	dir := filepath.Dir(log)
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Sprintf("directory %s: %v", d, errors.Unwrap(err))
		}
		if !may(fi, a, 0o1) {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && d == dir && st.Uid == 0 && fi.Mode().Perm()&0o077 == 0 && fi.Mode()&os.ModeSticky != 0 {
				return "its directory " + d + " is closed: a rotation did not finish (logrotate's prerotate closed it)"
			}
			return "it cannot enter the directory " + d
		}
		if d == "/" || d == "." {
			break
		}
	}
	fi, err := os.Stat(log)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "it does not exist (and fail2ban will not start a jail whose log is missing)"
	case err != nil:
		return errors.Unwrap(err).Error()
	case !fi.Mode().IsRegular():
		return "it is not a regular file"
	case !may(fi, a, 0o2):
		return fmt.Sprintf("no write permission (mode %04o)", fi.Mode().Perm())
	}
	state := log + ".state"
	if fi, err := os.Lstat(state); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != a.UID && a.UID != 0 {
			return fmt.Sprintf("its rate-limit state %s belongs to uid %d (remove it: the receiver makes it again)", state, st.Uid)
		}
		return ""
	}
	if di, err := os.Stat(dir); err != nil || !may(di, a, 0o2) {
		return "it cannot create the rate-limit state " + state + " beside it (banpush setup-account lets the account's group add files there)"
	}
	return ""
}

// SSHD says how to ask sshd for the settings in force for the account.
type SSHD struct {
	Program string // sshd; "" means /usr/sbin/sshd
	Config  string // sshd_config; "" means sshd's default
	Account string
	// AuthInfo: some line names its peer after its certificate, which
	// needs ExposeAuthInfo.
	AuthInfo bool
}

// CheckSSHD asks sshd which settings apply to the account (sshd -T -C
// user=NAME) and checks that forwarding and ttys are off for it, that it
// exposes auth info when a cert-authority line needs it, and that the
// RevokedKeys file it names can be read: sshd refuses every key of the
// account while that file is missing or damaged.
func CheckSSHD(ctx context.Context, run Runner, cfg SSHD) Result {
	prog := cfg.Program
	if prog == "" {
		prog = "/usr/sbin/sshd"
	}
	args := []string{"-T", "-C", "user=" + cfg.Account}
	if cfg.Config != "" {
		args = append(args, "-f", cfg.Config)
	}
	out, err := run(ctx, prog, args...)
	if err != nil {
		return result("sshd", cfg.Account, Fail, "'sshd -t' says what is wrong; doctor needs root to run 'sshd -T'", "cannot read sshd's settings for %s: %v", cfg.Account, err)
	}
	set := map[string]string{}
	raw := map[string]string{} // values as sshd printed them: paths keep their case
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			set[strings.ToLower(k)] = strings.ToLower(v)
			raw[strings.ToLower(k)] = v
		}
	}
	if len(set) == 0 {
		return result("sshd", cfg.Account, Fail, "", "sshd -T printed no settings")
	}
	var open []string
	if set["disableforwarding"] != "yes" {
		for _, k := range []string{"allowtcpforwarding", "allowagentforwarding", "x11forwarding", "allowstreamlocalforwarding"} {
			if v := set[k]; v != "no" {
				open = append(open, k+" "+v)
			}
		}
	}
	if v := set["permittty"]; v != "no" {
		open = append(open, "permittty "+v)
	}
	if krl := raw["revokedkeys"]; krl != "" && set["revokedkeys"] != "none" {
		if why := revokedKeys(krl); why != "" {
			return result("sshd", cfg.Account, Fail, "install the fleet's KRL as "+krl+" ("+fleetScript+" does), or an empty one: ssh-keygen -k -f "+krl,
				"sshd's RevokedKeys for %s is %s, which %s: sshd refuses every key of the account, and every push to this host", cfg.Account, krl, why)
		}
	}
	if cfg.AuthInfo && set["exposeauthinfo"] != "yes" {
		return result("sshd", cfg.Account, Fail, "add 'ExposeAuthInfo yes' to the account's Match block (contrib/sshd/banpush.conf), then sshd -t && systemctl reload ssh",
			"a cert-authority line names its peer after the certificate, but sshd does not expose auth info for %s: every such push is refused (exit 78)", cfg.Account)
	}
	if len(open) > 0 {
		sort.Strings(open)
		return result("sshd", cfg.Account, Warn, "cp contrib/sshd/banpush.conf /etc/ssh/sshd_config.d/ && sshd -t && systemctl reload ssh (Setup step 2)",
			"sshd allows %s for %s: only each line's restrict option stops them", strings.Join(open, ", "), cfg.Account)
	}
	return result("sshd", cfg.Account, OK, "", "sshd forbids forwarding and ttys for %s", cfg.Account)
}

// krlMagic begins a KRL (OpenSSH's PROTOCOL.krl).
const krlMagic = "SSHKRL\n\x00"

// revokedKeys says why sshd cannot use path as its RevokedKeys file, or
// "" if it can: a KRL, or a list of public keys one a line (what sshd
// accepts). The file is root's, in /etc.
func revokedKeys(path string) string {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "does not exist"
		}
		return "cannot be read: " + errors.Unwrap(err).Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "is not a regular file"
	}
	data, err := io.ReadAll(io.LimitReader(f, 16<<20))
	switch {
	case err != nil:
		return "cannot be read: " + err.Error()
	case bytes.HasPrefix(data, []byte(krlMagic)):
		return ""
	}
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey(line); err != nil {
			return fmt.Sprintf("is neither a KRL (ssh-keygen -k) nor a list of public keys (line %d)", n+1)
		}
	}
	return ""
}

// ReceivingJails maps each receiving jail to the logs the receivers feed
// it: full-trust lines to JailFull, --trust quorum lines to JailQuorum,
// and --fleet lines to JailFleet as well.
func ReceivingJails(recv []Receiver) map[string][]string {
	m := map[string][]string{}
	add := func(j, log string) {
		if !slices.Contains(m[j], log) {
			m[j] = append(m[j], log)
		}
	}
	for _, r := range recv {
		j := JailFull
		if r.Quorum {
			j = JailQuorum
		}
		add(j, r.Log)
		if r.Fleet {
			add(JailFleet, r.Log)
		}
	}
	return m
}
