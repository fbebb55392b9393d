package main

import (
	"bytes"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/receive"
)

// parseArgs parses args with banpush's own command line and returns what
// kong filled in and the command it selected.
func parseArgs(t *testing.T, args []string) (*CLI, string) {
	t.Helper()
	var cli CLI
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }, Now: time.Now}
	kctx, err := newParser(&cli, env).Parse(args)
	if err != nil {
		t.Fatalf("parsing %q: %v\n%s", args, err, out.String())
	}
	return &cli, kctx.Command()
}

// TestReceiveFlagsRoundTrip: authorize's flags, parsed by kong, are the
// receiver's arguments (receive.Args) they name, flag for flag: a flag
// added to one side only fails here.
func TestReceiveFlagsRoundTrip(t *testing.T) {
	want := receive.Args{Peer: "web1", Log: "/var/log/banpush/received.log", Ignore: []string{"198.51.100.0/24", "2001:db8::1"},
		MaxBurst: 7, MaxPerMinute: 9, AllowPrivate: true, Trust: "quorum", Quorum: 3, QuorumWindow: 2 * time.Hour,
		AllowUnban: true, UnbanWindow: 30 * time.Minute, Fleet: true, FleetFailures: 12, FleetHosts: 4, FleetWindow: 30 * time.Minute}
	args := append([]string{"authorize", "--cert-authority", "ca.pub"}, want.Argv()[1:]...)
	cli, cmd := parseArgs(t, args)
	if cmd != "authorize <key>" && cmd != "authorize" {
		t.Fatalf("%q selects %q", args, cmd)
	}
	if got := cli.Authorize.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("authorize %q: flags %+v, want %+v", want.Argv()[1:], got, want)
	}
	if n := reflect.TypeOf(ReceiveFlags{}).NumField(); n != reflect.TypeOf(receive.Args{}).NumField() {
		t.Errorf("ReceiveFlags has %d fields, receive.Args %d: one side gained a flag", n, reflect.TypeOf(receive.Args{}).NumField())
	}
}

// TestAuthorizeLineParses: the command= of a line authorize prints, split
// as the account's shell splits it, is a receive command line that parses
// to the arguments authorize was given, in canonical form.
func TestAuthorizeLineParses(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/web1.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl root@web1\n")
	var out, errb bytes.Buffer
	code := Main([]string{"authorize", "--peer", "web1", "--log", "/var/log//ban push/../banpush/r.log",
		"--ignore", "198.51.100.0/24,203.0.113.9/32", "--max-burst", "7", "--allow-private",
		"--trust", "quorum", "--quorum-window", "2h", "--allow-unban", "--unban-window", "30m", "--fleet-hosts", "4",
		"--binary", "/usr/bin/banpush", dir + "/web1.pub"},
		&Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Now: time.Now})
	if code != 0 {
		t.Fatalf("authorize: exit %d: %s", code, errb.String())
	}
	m := regexp.MustCompile(`command="([^"]*)"`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no command= in %q", out.String())
	}
	argv := shellSplit(t, m[1])
	if argv[0] != "/usr/bin/banpush" {
		t.Fatalf("command %q", argv)
	}
	got, err := receive.ParseArgs(argv[1:])
	want := receive.Args{Peer: "web1", Log: "/var/log/banpush/r.log", Ignore: []string{"198.51.100.0/24", "203.0.113.9"},
		MaxBurst: 7, MaxPerMinute: 120, AllowPrivate: true, Trust: "quorum", Quorum: 2, QuorumWindow: 2 * time.Hour,
		AllowUnban: true, UnbanWindow: 30 * time.Minute, Fleet: true, FleetFailures: receive.DefaultFleetPolicy.Failures,
		FleetHosts: 4, FleetWindow: receive.DefaultFleetPolicy.Window}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%s parses to %+v (%v), want %+v", m[1], got, err, want)
	}
}

// shellSplit splits a command line the way a POSIX shell splits what
// authkeys.ShellQuote writes: plain words and single-quoted strings.
func shellSplit(t *testing.T, s string) []string {
	t.Helper()
	var args []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args
}

// TestSenderArgsRoundTrip: the arguments push and flush start a
// background sender with parse back to the same globals and the send
// command, whatever the environment says.
func TestSenderArgsRoundTrip(t *testing.T) {
	t.Setenv("BANPUSH_INVENTORY", "/elsewhere/peers")
	t.Setenv("BANPUSH_SPOOL", "/elsewhere/spool")
	t.Setenv("BANPUSH_MAX_AGE", "1m")
	t.Setenv("BANPUSH_SELF", "elsewhere")
	want := Globals{Inventory: "/etc/banpush/peers test", Spool: "/var/spool/banpush", Self: "web1", Fail2banSocket: f2b.DefaultSocket}
	flags := DeliveryFlags{MaxAge: 36*time.Hour + 90*time.Second}
	cli, cmd := parseArgs(t, want.senderArgs(flags))
	if cmd != "send" {
		t.Errorf("%q selects %q, want send", want.senderArgs(flags), cmd)
	}
	if cli.Globals != want || cli.Send.DeliveryFlags != flags {
		t.Errorf("%q parses to %+v and %+v, want %+v and %+v", want.senderArgs(flags), cli.Globals, cli.Send.DeliveryFlags, want, flags)
	}
}
