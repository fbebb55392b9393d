package doctor

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

func TestCheckAccount(t *testing.T) {
	const expected = "this host is h2 in the inventory /etc/banpush/peers, so its peers push to it"
	tests := []struct {
		name     string
		acct     Account
		err      error
		expected string
		want     Status
	}{
		{name: "ready", acct: Account{Name: "banpush", Shell: "/bin/sh"}, want: OK},
		{name: "no such account", err: user.UnknownUserError("banpush"), want: Skip},
		{name: "no such account, the inventory names this host", err: user.UnknownUserError("banpush"), expected: expected, want: Fail},
		{name: "nologin", acct: Account{Name: "banpush", Shell: "/usr/sbin/nologin"}, want: Fail},
		{name: "false", acct: Account{Name: "banpush", Shell: "/bin/false"}, want: Fail},
		{name: "locked", acct: Account{Name: "banpush", Shell: "/bin/sh", Locked: true}, want: Fail},
		{name: "lookup error", err: errors.New("nss down"), want: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckAccount("banpush", tt.acct, tt.err, tt.expected)
			if r.Status != tt.want {
				t.Errorf("got %s (%s), want %s", r.Status, r.Found, tt.want)
			}
			if r.Status == Fail && r.Hint == "" && (tt.err == nil || tt.expected != "") {
				t.Errorf("a failure without a hint: %+v", r)
			}
		})
	}
}

func TestCheckSpool(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	euid := os.Geteuid()
	// A spool of another account's: as root, the test gives it away; as
	// another account, it looks as that account's to a third.
	other, otherEuid := mk("other", 0o700), euid+1
	if euid == 0 {
		if err := os.Chown(other, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		otherEuid = 0
	}
	tests := []struct {
		name   string
		path   string
		euid   int
		pusher bool
		want   Status
		hint   string // in the hint
	}{
		{name: "private", path: mk("ok", 0o700), euid: euid, pusher: true, want: OK},
		{name: "group-writable", path: mk("gw", 0o770), euid: euid, pusher: true, want: Fail},
		{name: "readable", path: mk("r", 0o755), euid: euid, pusher: true, want: Warn},
		{name: "another owner", path: other, euid: otherEuid, pusher: true, want: Fail, hint: "chown"},
		// fail2ban runs banpush as root: doctor run by another account is
		// told to run as root, not to give root's spool away (/ stands in
		// for a directory of root's).
		{name: "root's, doctor not root", path: "/", euid: 1001, pusher: true, want: Warn, hint: "run doctor as root"},
		{name: "missing on a pusher", path: filepath.Join(dir, "none"), euid: euid, pusher: true, want: Warn},
		{name: "missing elsewhere", path: filepath.Join(dir, "none"), euid: euid, want: Skip},
		{name: "a file", path: file, euid: euid, pusher: true, want: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckSpool(tt.path, tt.euid, tt.pusher)
			if r.Status != tt.want || !strings.Contains(r.Hint, tt.hint) {
				t.Errorf("got %s (%s; hint %q), want %s with %q in the hint", r.Status, r.Found, r.Hint, tt.want, tt.hint)
			}
			if strings.Contains(r.Hint, "chown") && tt.euid != 0 && strings.Contains(r.Found, "root") {
				t.Errorf("tells a user that is not root to chown root's spool: %+v", r)
			}
		})
	}
}

// TestCheckPrivileges: doctor run by another account than root says so
// first, and how to run it.
func TestCheckPrivileges(t *testing.T) {
	if rs := CheckPrivileges(0); len(rs) != 0 {
		t.Errorf("as root: got %+v, want nothing", rs)
	}
	rs := CheckPrivileges(1001)
	if len(rs) != 1 || rs[0].Status != Warn || !strings.Contains(rs[0].Hint, "as root") || !strings.Contains(rs[0].Found, "uid 1001") {
		t.Errorf("as uid 1001: got %+v, want one warning that says to run as root", rs)
	}
}

// systemctlFor is a stand-in for systemctl that knows one unit, enabled
// and active as given: no test can start systemd.
func systemctlFor(t *testing.T, unit, enabled, active string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "systemctl" || len(args) != 2 || args[1] != unit {
			t.Fatalf("ran %s %q", name, args)
		}
		if args[0] == "is-enabled" {
			return []byte(enabled + "\n"), nil
		}
		return []byte(active + "\n"), nil
	}
}

// TestCheckFlushTimer runs with a stand-in for systemctl.
func TestCheckFlushTimer(t *testing.T) {
	systemctl := func(enabled, active string) Runner { return systemctlFor(t, FlushTimer, enabled, active) }
	tests := []struct {
		name            string
		run             Runner
		systemd, pusher bool
		want            Status
	}{
		{name: "enabled and active", run: systemctl("enabled", "active"), systemd: true, pusher: true, want: OK},
		{name: "not installed", run: systemctl("", "inactive"), systemd: true, pusher: true, want: Fail},
		{name: "disabled", run: systemctl("disabled", "inactive"), systemd: true, pusher: true, want: Fail},
		{name: "enabled, not started", run: systemctl("enabled", "inactive"), systemd: true, pusher: true, want: Fail},
		{name: "no systemd", systemd: false, pusher: true, want: Skip},
		{name: "not a pusher", systemd: true, want: Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := CheckFlushTimer(context.Background(), tt.run, tt.systemd, tt.pusher); r.Status != tt.want {
				t.Errorf("got %s (%s), want %s", r.Status, r.Found, tt.want)
			}
		})
	}
}

// TestCheckApplyUnbans: on a host where a peer may unban, the path unit
// that applies unbans must be enabled and active.
func TestCheckApplyUnbans(t *testing.T) {
	systemctl := func(enabled, active string) Runner { return systemctlFor(t, ApplyUnbansPath, enabled, active) }
	tests := []struct {
		name            string
		run             Runner
		systemd, unbans bool
		want            Status
	}{
		{name: "enabled and active", run: systemctl("enabled", "active"), systemd: true, unbans: true, want: OK},
		{name: "not installed", run: systemctl("", "inactive"), systemd: true, unbans: true, want: Fail},
		{name: "enabled, not started", run: systemctl("enabled", "inactive"), systemd: true, unbans: true, want: Fail},
		{name: "no systemd", unbans: true, want: Skip},
		{name: "no peer may unban", systemd: true, want: Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckApplyUnbans(context.Background(), tt.run, tt.systemd, tt.unbans)
			if r.Status != tt.want || r.Check != "apply-unbans" {
				t.Errorf("got %s %s (%s), want %s", r.Check, r.Status, r.Found, tt.want)
			}
		})
	}
}

// TestCheckReportFailures: on a host whose lines have --fleet, the
// reporter must be enabled and active.
func TestCheckReportFailures(t *testing.T) {
	systemctl := func(enabled, active string) Runner { return systemctlFor(t, ReportFailuresService, enabled, active) }
	tests := []struct {
		name           string
		run            Runner
		systemd, fleet bool
		want           Status
	}{
		{name: "enabled and active", run: systemctl("enabled", "active"), systemd: true, fleet: true, want: OK},
		{name: "enabled, failed", run: systemctl("enabled", "failed"), systemd: true, fleet: true, want: Fail},
		{name: "no systemd", fleet: true, want: Skip},
		{name: "no --fleet line", systemd: true, want: Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckReportFailures(context.Background(), tt.run, tt.systemd, tt.fleet)
			if r.Status != tt.want || r.Check != "report-failures" {
				t.Errorf("got %s %s (%s), want %s", r.Check, r.Status, r.Found, tt.want)
			}
		})
	}
}

func TestCheckInventory(t *testing.T) {
	lookup := func(ctx context.Context, host string) error {
		if host == "known.example" {
			return nil
		}
		return errors.New("no such host")
	}
	tests := []struct {
		name    string
		loadErr error
		peers   []Peer
		want    []Status
	}{
		{name: "fine", peers: []Peer{{Name: "a", HostName: "192.0.2.1"}, {Name: "b", HostName: "known.example"}}, want: []Status{OK}},
		{name: "no inventory", loadErr: fs.ErrNotExist, want: []Status{Skip}},
		{name: "unparsable", loadErr: errors.New("inventory: line 3: Match is not supported"), want: []Status{Fail}},
		{name: "empty", want: []Status{Warn}},
		{name: "does not resolve", peers: []Peer{{Name: "a", HostName: "192.0.2.1"}, {Name: "b", HostName: "unknown.example"}}, want: []Status{Fail}},
		{name: "bad settings", peers: []Peer{{Name: "a", Err: errors.New("ProxyJump is not supported")}}, want: []Status{Fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := CheckInventory(context.Background(), "/etc/banpush/peers", tt.loadErr, tt.peers, lookup)
			var got []Status
			for _, r := range rs {
				got = append(got, r.Status)
				if strings.Count(r.Found, r.Subject) > 1 && r.Subject != "" {
					t.Errorf("the peer is named twice: %+v", r)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v (%+v), want %v", got, rs, tt.want)
			}
		})
	}
}

// TestAppendable checks the log as an unprivileged account sees it.
func TestAppendable(t *testing.T) {
	testenv.Need(t, testenv.Root("makes files of another account"))
	nobody, err := LookupAccount("nobody", "/etc/passwd", "/etc/shadow")
	if err != nil {
		t.Skipf("no account nobody: %v", err)
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkfile := func(dir string, mode os.FileMode, uid int) string {
		p := filepath.Join(dir, "received.log")
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := mkdir("own", 0o750, nobody.UID)
	rootDir := mkdir("root", 0o755, 0)
	closed := mkdir("closed", 0o700, 0)
	tests := []struct {
		name string
		log  string
		want string // a part of the reason; "" for none
	}{
		{name: "the account's own", log: mkfile(own, 0o640, nobody.UID)},
		{name: "root's file", log: mkfile(rootDir, 0o644, 0), want: "no write permission"},
		{name: "in a closed directory", log: filepath.Join(closed, "received.log"), want: "cannot enter"},
		{name: "missing", log: filepath.Join(own, "other.log"), want: "does not exist"},
	}
	writable := mkdir("writable", 0o755, 0)
	log := mkfile(writable, 0o666, 0)
	tests = append(tests, struct {
		name string
		log  string
		want string
	}{name: "no room for the state", log: log, want: "rate-limit state"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendable(tt.log, nobody)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckQuorums(t *testing.T) {
	q := func(log string, n int, w time.Duration) Receiver {
		return Receiver{Log: log, Quorum: true, QuorumPeers: n, QuorumWindow: w}
	}
	f := func(log, policy string) Receiver { return Receiver{Log: log, Fleet: true, FleetPolicy: policy} }
	tests := []struct {
		name string
		recv []Receiver
		want []string // the Found of each warning
	}{
		{"none", nil, nil},
		{"full trust only", []Receiver{{Log: "/l"}, {Log: "/l"}}, nil},
		{"agreeing", []Receiver{q("/l", 2, time.Hour), q("/l", 2, time.Hour), {Log: "/l"}}, nil},
		{"other logs may differ", []Receiver{q("/a", 2, time.Hour), q("/b", 3, time.Minute)}, nil},
		{"different N", []Receiver{q("/l", 2, time.Hour), q("/l", 3, time.Hour)},
			[]string{"the quorum lines of /l disagree: --quorum 2 --quorum-window 1h0m0s; --quorum 3 --quorum-window 1h0m0s"}},
		{"different window", []Receiver{q("/l", 2, time.Hour), q("/l", 2, 2*time.Hour), q("/l", 2, time.Hour)},
			[]string{"the quorum lines of /l disagree: --quorum 2 --quorum-window 1h0m0s; --quorum 2 --quorum-window 2h0m0s"}},
		{"fleet lines agreeing", []Receiver{f("/l", "T"), f("/l", "T"), {Log: "/l"}}, nil},
		{"fleet lines disagreeing", []Receiver{f("/l", "T"), f("/l", "U"), q("/l", 2, time.Hour)},
			[]string{"the fleet lines of /l disagree: T; U"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range checkQuorums(tt.recv) {
			if r.Status != Warn || r.Hint == "" || r.Check != "quorum" && r.Check != "fleet" {
				t.Errorf("%s: %+v, want a quorum warning with a hint", tt.name, r)
			}
			got = append(got, r.Found)
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestReceivingJailsFleet: a --fleet line feeds the banpush-fleet jail as
// well as its own (banpush, or banpush-quorum), so that doctor checks the
// fleet jail runs and watches the log wherever the policy is on.
func TestReceivingJailsFleet(t *testing.T) {
	r, err := ParseReceiver([]string{"receive", "--peer", "h2", "--log", "/l", "--fleet-failures", "12"})
	if err != nil || !r.Fleet || r.FleetPolicy != "--fleet-failures 12 --fleet-hosts 3 --fleet-window 1h0m0s" {
		t.Fatalf("ParseReceiver: %+v, %v", r, err)
	}
	q := Receiver{Log: "/q", Quorum: true}
	got := ReceivingJails([]Receiver{r, q, {Log: "/l"}})
	want := map[string][]string{JailFull: {"/l"}, JailFleet: {"/l"}, JailQuorum: {"/q"}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("got %v, want %v", got, want)
	}
}
