package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/testkit/fakepeer"
	"golang.org/x/crypto/ssh"
)

// runReceive runs 'banpush receive' in-process as sshd would, with the given
// SSH_ORIGINAL_COMMAND (unset when nil), SSH_CONNECTION and stdin.
func runReceive(t *testing.T, request *string, conn string, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runReceiveHome(t, request, conn, t.TempDir(), stdin, args...)
}

// runReceiveHome is runReceive for an account whose HOME is home.
func runReceiveHome(t *testing.T, request *string, conn, home string, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	vars := map[string]string{"SSH_CONNECTION": conn, "HOME": home}
	if request != nil {
		vars["SSH_ORIGINAL_COMMAND"] = *request
	}
	return runReceiveEnv(t, vars, stdin, args...)
}

// runReceiveEnv runs 'banpush receive' in-process with exactly the
// environment vars.
func runReceiveEnv(t *testing.T, vars map[string]string, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{
		Stdin:  bytes.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return vars[k] },
		Now:    func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.FixedZone("", 3600)) },
	}
	code = Main(append([]string{"receive"}, args...), env)
	return code, out.String(), errb.String()
}

func ptr(s string) *string { return &s }

// TestReceiveHostile sends hostile requests and records to the receiver.
// Every one must be refused with its documented exit status and reason, and
// must leave the log exactly as it was.
func TestReceiveHostile(t *testing.T) {
	ban := ptr("banpush-v1 ban")
	const conn = "198.51.100.99 40000 192.0.2.1 22"
	oneRefused := "banpush-v1 ok accepted=0 refused=1\n"
	twoRefused := "banpush-v1 ok accepted=0 refused=2\n"
	tests := []struct {
		name       string
		request    *string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string // a substring, or "" for none
	}{
		// Requests: exit 64, nothing on stdout, one line on stderr.
		{"request unset", nil, "203.0.113.7\n", 64, "", "no request"},
		{"request empty", ptr(""), "203.0.113.7\n", 64, "", "no request"},
		{"request shell", ptr("sh -c id"), "", 64, "", "unknown request"},
		{"request sftp", ptr("internal-sftp"), "", 64, "", "unknown request"},
		{"request scp", ptr("scp -t /tmp"), "", 64, "", "unknown request"},
		{"request wrong case", ptr("banpush-v1 BAN"), "", 64, "", "unknown request"},
		{"request other version", ptr("banpush-v2 ban"), "", 64, "", "unknown request"},
		{"request with argument", ptr("banpush-v1 ban now"), "", 64, "", "unknown request"},
		{"request with semicolon", ptr("banpush-v1 ban; id"), "", 64, "", "unknown request"},
		{"request with substitution", ptr("banpush-v1 ban $(id)"), "", 64, "", "unknown request"},
		{"request with newline", ptr("banpush-v1 ban\nid"), "", 64, "", "unknown request"},
		{"request trailing newline", ptr("banpush-v1 ban\n"), "", 64, "", "unknown request"},
		{"request leading space", ptr(" banpush-v1 ban"), "", 64, "", "unknown request"},
		{"request double space", ptr("banpush-v1  ban"), "", 64, "", "unknown request"},
		{"request NUL", ptr("banpush-v1 ban\x00"), "", 64, "", "unknown request"},

		// Policy.
		{"loopback v4", ban, "127.0.0.1\n", 0, oneRefused, "line 1: refused: loopback address"},
		{"loopback v6", ban, "::1\n", 0, oneRefused, "refused: loopback address"},
		{"mapped loopback", ban, "::ffff:127.0.0.1\n", 0, oneRefused, "refused: loopback address"},
		{"unspecified v4", ban, "0.0.0.0\n", 0, oneRefused, "refused: unspecified address"},
		{"unspecified v6", ban, "::\n", 0, oneRefused, "refused: unspecified address"},
		{"multicast v4", ban, "224.0.0.1\n", 0, oneRefused, "refused: multicast address"},
		{"multicast v6", ban, "ff02::1\n", 0, oneRefused, "refused: multicast address"},
		{"link-local v4", ban, "169.254.10.1\n", 0, oneRefused, "refused: link-local address"},
		{"link-local v6", ban, "fe80::1\n", 0, oneRefused, "refused: link-local address"},
		{"broadcast", ban, "255.255.255.255\n", 0, oneRefused, "refused: broadcast address"},
		{"reserved class E", ban, "240.0.0.1\n", 0, oneRefused, "refused: reserved address"},
		{"reserved this network", ban, "0.1.2.3\n", 0, oneRefused, "refused: reserved address"},
		{"private 10/8", ban, "10.1.2.3\n", 0, oneRefused, "refused: private address"},
		{"private 172.16/12", ban, "172.31.255.254\n", 0, oneRefused, "refused: private address"},
		{"private 192.168/16", ban, "192.168.1.1\n", 0, oneRefused, "refused: private address"},
		{"private mapped", ban, "::ffff:10.0.0.1\n", 0, oneRefused, "refused: private address"},
		{"unique local v6", ban, "fd12:3456::1\n", 0, oneRefused, "refused: private address"},
		{"CGNAT", ban, "100.64.0.1\n", 0, oneRefused, "refused: shared address space (CGNAT)"},
		{"ignore range", ban, "192.0.2.77\n", 0, oneRefused, "refused: address in an --ignore range"},
		{"connecting peer", ban, "198.51.100.99\n", 0, oneRefused, "refused: address of the connecting peer"},
		{"connecting peer mapped", ban, "::ffff:198.51.100.99\n", 0, oneRefused, "refused: address of the connecting peer"},

		// IPv6 forms that carry an IPv4 address, and ranges that are not
		// globally reachable.
		{"IPv4-compatible loopback", ban, "::127.0.0.1\n", 0, oneRefused, "refused: deprecated IPv4-compatible address"},
		{"IPv4-compatible loopback, hex", ban, "::7f00:1\n", 0, oneRefused, "refused: deprecated IPv4-compatible address"},
		{"IPv4-compatible public", ban, "::203.0.113.7\n", 0, oneRefused, "refused: deprecated IPv4-compatible address"},
		{"NAT64 loopback", ban, "64:ff9b::127.0.0.1\n", 0, oneRefused, "refused: loopback address"},
		{"NAT64 private", ban, "64:ff9b::a00:1\n", 0, oneRefused, "refused: private address"},
		{"NAT64 connecting peer", ban, "64:ff9b::198.51.100.99\n", 0, oneRefused, "refused: address of the connecting peer"},
		{"NAT64 ignore range", ban, "64:ff9b::192.0.2.77\n", 0, oneRefused, "refused: address in an --ignore range"},
		{"6to4 loopback", ban, "2002:7f00:1::1\n", 0, oneRefused, "refused: loopback address"},
		{"6to4 private", ban, "2002:c0a8:101::1\n", 0, oneRefused, "refused: private address"},
		{"6to4 connecting peer", ban, "2002:c633:6463::1\n", 0, oneRefused, "refused: address of the connecting peer"},
		{"local-use NAT64", ban, "64:ff9b:1::203.0.113.7\n", 0, oneRefused, "refused: special-purpose address, not globally reachable"},
		{"discard-only", ban, "100::1\n", 0, oneRefused, "refused: special-purpose address, not globally reachable"},
		{"IETF protocol assignments", ban, "192.0.0.8\n", 0, oneRefused, "refused: special-purpose address, not globally reachable"},
		{"benchmarking v4", ban, "198.18.0.1\n", 0, oneRefused, "refused: special-purpose address, not globally reachable"},
		{"benchmarking v6", ban, "2001:2::1\n", 0, oneRefused, "refused: special-purpose address, not globally reachable"},

		// Syntax.
		{"zone", ban, "fe80::1%eth0\n", 0, oneRefused, "refused: address has a zone"},
		{"zone with newline", ban, "fe80::1%\nid\n", 0, twoRefused, "line 2: refused: not an IP address"},
		{"zone on global address", ban, "2001:db8::1%1\n", 0, oneRefused, "refused: address has a zone"},
		{"prefix length", ban, "203.0.113.0/24\n", 0, oneRefused, "refused: address has a prefix length"},
		{"leading zeros", ban, "203.0.113.007\n", 0, oneRefused, "refused: not an IP address"},
		{"octal", ban, "0203.0.113.7\n", 0, oneRefused, "refused: not an IP address"},
		{"hex", ban, "0xcb.0.113.7\n", 0, oneRefused, "refused: not an IP address"},
		{"three octets", ban, "203.0.113\n", 0, oneRefused, "refused: not an IP address"},
		{"integer address", ban, "3405803783\n", 0, oneRefused, "refused: not an IP address"},
		{"with port", ban, "203.0.113.7:22\n", 0, oneRefused, "refused: not an IP address"},
		{"bracketed v6", ban, "[2001:db8::1]\n", 0, oneRefused, "refused: not an IP address"},
		{"hostname", ban, "localhost\n", 0, oneRefused, "refused: not an IP address"},
		{"fullwidth digits", ban, "２０３.0.113.7\n", 0, oneRefused, "refused: not printable ASCII"},
		{"non-UTF-8", ban, "\xff\xfe203.0.113.7\n", 0, oneRefused, "refused: not printable ASCII"},
		{"UTF-8 in jail", ban, "203.0.113.7 jail=sshé\n", 0, oneRefused, "refused: not printable ASCII"},
		{"semicolon", ban, "203.0.113.7;id\n", 0, oneRefused, "refused: not an IP address"},
		{"command substitution", ban, "$(reboot)\n", 0, oneRefused, "refused: not an IP address"},
		{"backticks in jail", ban, "203.0.113.7 jail=`id`\n", 0, oneRefused, "refused: bad jail name"},
		{"pipe in jail", ban, "203.0.113.7 jail=a|b\n", 0, oneRefused, "refused: bad jail name"},
		{"path in jail", ban, "203.0.113.7 jail=../../etc\n", 0, oneRefused, "refused: bad jail name"},
		{"jail too long", ban, "203.0.113.7 jail=" + strings.Repeat("j", 65) + "\n", 0, oneRefused, "refused: bad jail name"},
		{"CR", ban, "203.0.113.7\r\n", 0, oneRefused, "refused: not printable ASCII"},
		{"NUL", ban, "203.0.113.7\x00\n", 0, oneRefused, "refused: not printable ASCII"},
		{"tab", ban, "203.0.113.7\tjail=sshd\n", 0, oneRefused, "refused: not printable ASCII"},
		{"escape sequence", ban, "203.0.113.7 jail=\x1b[2J\n", 0, oneRefused, "refused: not printable ASCII"},
		{"oversize line", ban, "203.0.113.7 jail=sshd" + strings.Repeat(" x=1", 130) + "\n", 0, oneRefused, "refused: line too long"},
		{"empty line", ban, "\n", 0, oneRefused, "refused: empty record"},
		{"cut short", ban, "203.0.113.12", 0, oneRefused, "refused: incomplete record (no newline)"},
		{"leading space", ban, " 203.0.113.7\n", 0, oneRefused, "refused: not an IP address"},
		{"double space", ban, "203.0.113.7  jail=sshd\n", 0, oneRefused, "refused: malformed field"},
		{"trailing space", ban, "203.0.113.7 \n", 0, oneRefused, "refused: malformed field"},
		{"empty jail", ban, "203.0.113.7 jail=\n", 0, oneRefused, "refused: malformed field"},
		{"field without value", ban, "203.0.113.7 jail\n", 0, oneRefused, "refused: malformed field"},
		{"unknown field", ban, "203.0.113.7 cmd=id\n", 0, oneRefused, "refused: unknown field"},
		{"duplicate field", ban, "203.0.113.7 jail=a jail=b\n", 0, oneRefused, "refused: duplicate field"},
		{"fractional time", ban, "203.0.113.7 time=1700000000.5\n", 0, oneRefused, "refused: bad time"},
		{"negative time", ban, "203.0.113.7 time=-5\n", 0, oneRefused, "refused: bad time"},
		{"time leading zero", ban, "203.0.113.7 time=01700000000\n", 0, oneRefused, "refused: bad time"},
		{"time overflow", ban, "203.0.113.7 time=99999999999999999999\n", 0, oneRefused, "refused: bad time"},
		{"time plus sign", ban, "203.0.113.7 time=+1700000000\n", 0, oneRefused, "refused: bad time"},
		{"bantime zero", ban, "203.0.113.7 bantime=0\n", 0, oneRefused, "refused: bad bantime"},
		{"bantime minus two", ban, "203.0.113.7 bantime=-2\n", 0, oneRefused, "refused: bad bantime"},
		{"bantime words", ban, "203.0.113.7 bantime=10m\n", 0, oneRefused, "refused: bad bantime"},

		// Whole batches: exit 65, nothing on stdout.
		{"too many records", ban, strings.Repeat("203.0.113.7\n", 10001), 65, "", "batch refused"},
		{"too many bytes", ban, strings.Repeat("x", 1<<20+1), 65, "", "batch refused"},
		{"too many bytes in one line", ban, "203.0.113.7 jail=" + strings.Repeat("a", 1<<20), 65, "", "batch refused"},
	}
	tests = append(tests, []struct {
		name       string
		request    *string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"unban request with argument", ptr("banpush-v1 unban 203.0.113.7"), "", 64, "", "unknown request"},
		{"unban request with semicolon", ptr("banpush-v1 unban;id"), "", 64, "", "unknown request"},
		{"unban request wrong case", ptr("banpush-v1 UNBAN"), "", 64, "", "unknown request"},
	}...)
	// Every case against a full-trust peer, a quorum peer (a report line
	// is as hard to forge as a ban line), as an unban request, a peer
	// allowed to unban (an unban line as hard as either), and as a fail
	// request, a peer whose failure reports count (a fleet line as hard).
	trusts := map[string][]string{"full": nil, "quorum": {"--trust", "quorum"}, "unban": {"--allow-unban"},
		"fleet": {"--fleet-failures", "2", "--fleet-hosts", "2"}}
	for _, tt := range tests {
		for trust, trustArgs := range trusts {
			request := tt.request
			switch {
			case trust == "unban" && request == ban:
				request = ptr("banpush-v1 unban")
			case trust == "fleet" && request == ban:
				request = ptr("banpush-v1 fail")
			}
			t.Run(trust+"/"+tt.name, func(t *testing.T) {
				log := filepath.Join(t.TempDir(), "received.log")
				before := []byte("2026-11-24T10:00:00+00:00 banpush: ban 203.0.113.1 peer=old\n" +
					"2026-11-24T10:00:00+00:00 banpush: report 203.0.113.2 peer=old\n")
				if err := os.WriteFile(log, before, 0o640); err != nil {
					t.Fatal(err)
				}
				code, stdout, stderr := runReceive(t, request, conn, []byte(tt.stdin),
					append([]string{"--peer", "web1", "--log", log, "--ignore", "192.0.2.0/24"}, trustArgs...)...)
				if code != tt.wantCode {
					t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
				}
				if stdout != tt.wantStdout {
					t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
				}
				if !strings.Contains(stderr, tt.wantStderr) {
					t.Errorf("stderr %q, want it to contain %q", stderr, tt.wantStderr)
				}
				if tt.wantCode != 0 && strings.Count(stderr, "\n") != 1 {
					t.Errorf("stderr has %d lines, want 1: %q", strings.Count(stderr, "\n"), stderr)
				}
				assertNoEcho(t, tt.stdin, stderr)
				after, err := os.ReadFile(log)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(after, before) {
					t.Errorf("log changed:\n%s", after)
				}
				for _, memory := range []string{".unbans", ".fleet"} {
					if _, err := os.Stat(log + memory); !os.IsNotExist(err) {
						t.Errorf("memory %s written: %v", memory, err)
					}
				}
			})
		}
	}
}

// TestReceiveHostileReports: a fail request's own field, and the fleet
// policy's refusals: each record refused with its reason, never echoed,
// and neither the log nor the fleet memory written; a failures field in a
// ban is refused.
func TestReceiveHostileReports(t *testing.T) {
	const conn = "198.51.100.99 40000 192.0.2.1 22"
	fail, ban := ptr("banpush-v1 fail"), ptr("banpush-v1 ban")
	fleet := []string{"--fleet-failures", "2", "--fleet-hosts", "2"}
	// runReceive's clock: 2026-11-24 12:00 +01:00; two hours before.
	old := strconv.FormatInt(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC).Unix(), 10)
	tests := []struct {
		name    string
		request *string
		args    []string
		stdin   string
		refused string
	}{
		{"failures zero", fail, fleet, "203.0.113.7 failures=0\n", "bad failures"},
		{"failures over the bound", fail, fleet, "203.0.113.7 failures=1001\n", "bad failures"},
		{"failures negative", fail, fleet, "203.0.113.7 failures=-1\n", "bad failures"},
		{"failures exponent", fail, fleet, "203.0.113.7 failures=1e3\n", "bad failures"},
		{"failures leading zero", fail, fleet, "203.0.113.7 failures=012\n", "bad failures"},
		{"failures twice", fail, fleet, "203.0.113.7 failures=1 failures=1\n", "duplicate field"},
		{"older than the window", fail, fleet, "203.0.113.7 time=" + old + " failures=3\n", "failure older than the fleet window"},
		{"no --fleet", fail, nil, "203.0.113.7 failures=3\n", "failure reports not accepted for this key"},
		{"private", fail, fleet, "10.1.2.3 failures=3\n", "private address"},
		{"connecting peer", fail, fleet, "198.51.100.99 failures=3\n", "address of the connecting peer"},
		{"failures in a ban", ban, fleet, "203.0.113.7 failures=3\n", "failures field outside a failure report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "received.log")
			code, stdout, stderr := runReceive(t, tt.request, conn, []byte(tt.stdin), append([]string{"--peer", "web1", "--log", log}, tt.args...)...)
			if code != 0 || stdout != "banpush-v1 ok accepted=0 refused=1\n" || !strings.Contains(stderr, "line 1: refused: "+tt.refused) {
				t.Errorf("exit %d, stdout %q, stderr %q; want line 1 refused: %s", code, stdout, stderr, tt.refused)
			}
			assertNoEcho(t, tt.stdin, stderr)
			for _, f := range []string{log, log + ".fleet"} {
				if _, err := os.Stat(f); !os.IsNotExist(err) {
					t.Errorf("%s written: %v", filepath.Base(f), err)
				}
			}
		})
	}
}

// TestReceiveUnbanNotAllowed: a key without --allow-unban has each of its
// unbans refused, with the reason, and nothing is written or remembered;
// with it, the unban line is written and a ban of the address from that
// peer is refused as stale until the window has passed (from any peer
// when the unban lifted a ban here: sshpush/receive
// TestUnbanStaleOnlyWhereLifted).
func TestReceiveUnbanNotAllowed(t *testing.T) {
	const conn = "198.51.100.99 40000 192.0.2.1 22"
	log := filepath.Join(t.TempDir(), "received.log")
	unban, ban := ptr("banpush-v1 unban"), ptr("banpush-v1 ban")
	code, stdout, stderr := runReceive(t, unban, conn, []byte("203.0.113.7\n203.0.113.8 jail=sshd\n"), "--peer", "web1", "--log", log)
	if code != 0 || stdout != "banpush-v1 ok accepted=0 refused=2\n" ||
		strings.Count(stderr, "refused: unban not allowed for this key") != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("log written: %v", err)
	}
	if _, err := os.Stat(log + ".unbans"); !os.IsNotExist(err) {
		t.Errorf("unban memory written: %v", err)
	}

	code, stdout, _ = runReceive(t, unban, conn, []byte("203.0.113.7 jail=sshd\n"), "--peer", "admin", "--log", log, "--allow-unban")
	got, _ := os.ReadFile(log)
	if code != 0 || stdout != "banpush-v1 ok accepted=1 refused=0\n" ||
		string(got) != "2026-11-24T12:00:00+01:00 banpush: unban 203.0.113.7 peer=admin jail=sshd\n" {
		t.Fatalf("allowed unban: exit %d, stdout %q, log %q", code, stdout, got)
	}
	code, stdout, stderr = runReceive(t, ban, conn, []byte("203.0.113.7\n"), "--peer", "admin", "--log", log)
	if code != 0 || stdout != "banpush-v1 ok accepted=0 refused=1\n" || !strings.Contains(stderr, "refused: unbanned here recently (stale ban)") {
		t.Errorf("ban within the window: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// assertNoEcho fails if stderr repeats a distinctive piece of what the peer
// sent: the receiver never echoes untrusted input.
func assertNoEcho(t *testing.T, stdin, stderr string) {
	t.Helper()
	for _, bad := range []string{"reboot", "`id`", "eth0", "../", "cmd=", "\x1b", "é", "10m", "a|b"} {
		if strings.Contains(stdin, bad) && strings.Contains(stderr, bad) {
			t.Errorf("stderr echoes input %q: %q", bad, stderr)
		}
	}
}

func TestReceiveAccepts(t *testing.T) {
	log := filepath.Join(t.TempDir(), "received.log")
	stdin := "203.0.113.7 jail=sshd time=1700000000 bantime=600\n" +
		"127.0.0.1\n" +
		"2001:DB8:0:0::1 bantime=-1\n" +
		"203.0.113.7\n" + // duplicate: written once
		"::ffff:203.0.113.8\n" + // mapped
		"2001:db8::12" // cut short: no newline, refused
	code, stdout, stderr := runReceive(t, ptr("banpush-v1 ban"), "192.0.2.1 1 192.0.2.2 22", []byte(stdin),
		"--peer", "web1", "--log", log)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if want := "banpush-v1 ok accepted=3 refused=3\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	wantErr := "banpush: line 2: refused: loopback address\nbanpush: line 4: refused: duplicate address in batch\n" +
		"banpush: line 6: refused: incomplete record (no newline)\n"
	if stderr != wantErr {
		t.Errorf("stderr %q, want %q", stderr, wantErr)
	}
	got, _ := os.ReadFile(log)
	want := "2026-11-24T12:00:00+01:00 banpush: ban 203.0.113.7 peer=web1 jail=sshd time=1700000000 bantime=600\n" +
		"2026-11-24T12:00:00+01:00 banpush: ban 2001:db8::1 peer=web1 bantime=-1\n" +
		"2026-11-24T12:00:00+01:00 banpush: ban 203.0.113.8 peer=web1\n"
	if string(got) != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v, want 0640", fi.Mode().Perm())
	}
}

// TestReceivePing: a ping answers with the peer's name once it has
// checked that a batch could write the log, which it does not make; with a
// log it could not write it exits 73, as a batch would.
func TestReceivePing(t *testing.T) {
	log := filepath.Join(t.TempDir(), "received.log")
	code, stdout, _ := runReceive(t, ptr("banpush-v1 ping"), "", nil, "--peer", "web1", "--log", log)
	if code != 0 || !strings.HasPrefix(stdout, "banpush-v1 ok peer=web1 version=") {
		t.Errorf("exit %d stdout %q, want 0 and the ping answer", code, stdout)
	}
	if _, err := os.Lstat(log); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the ping made the log: %v", err)
	}
	code, stdout, stderr := runReceive(t, ptr("banpush-v1 ping"), "", nil, "--peer", "web1", "--log", "/nonexistent/log")
	if code != exitCannotWrite || stdout != "" || !strings.Contains(stderr, "cannot write the log") {
		t.Errorf("exit %d stdout %q stderr %q, want %d, nothing and why", code, stdout, stderr, exitCannotWrite)
	}
}

// TestReceiveLogUnusable: a log that cannot be opened is exit 73 (the
// receiver cannot write its log, and waiting does not help) with nothing
// written.
func TestReceiveLogUnusable(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.log")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, log, want string }{
		{"symlink", link, "symbolic link"},
		{"fifo", fifo, "not a regular file"},
		{"directory", sub, "not a regular file"},
		{"missing directory", filepath.Join(dir, "nodir", "x.log"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runReceive(t, ptr("banpush-v1 ban"), "", []byte("203.0.113.7\n"), "--peer", "web1", "--log", tt.log)
			if code != exitCannotWrite || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d stdout %q stderr %q, want %d, nothing, %q", code, stdout, stderr, exitCannotWrite, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Errorf("symlink target written: %q", b)
	}
}

// TestReceiveHostileCertificates: with --peer-from-cert the peer's name
// comes from its certificate's key ID. A key ID that is not a peer name, a
// plain key, or no certificate at all is refused with exit 78 before a
// byte is read, and the log is unchanged.
func TestReceiveHostileCertificates(t *testing.T) {
	dir := t.TempDir()
	authFile := func(name string, edit func(*ssh.Certificate), plain bool) string {
		signer := fakepeer.NewSigner(t)
		ca := fakepeer.NewSigner(t)
		cert := &ssh.Certificate{Key: signer.PublicKey(), KeyId: "web1", CertType: ssh.UserCert,
			ValidPrincipals: []string{"banpush"}, ValidBefore: ssh.CertTimeInfinity}
		if edit != nil {
			edit(cert)
		}
		if err := cert.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		var key ssh.PublicKey = cert
		if plain {
			key = signer.PublicKey()
		}
		path := filepath.Join(dir, name)
		writeFile(t, path, "publickey "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))+"\n")
		return path
	}
	id := func(s string) func(*ssh.Certificate) { return func(c *ssh.Certificate) { c.KeyId = s } }
	tests := []struct {
		name, auth, want string
	}{
		{"key ID with a space", authFile("space", id("web1 --allow-private"), false), "is not a peer name"},
		{"key ID with a newline and a fake field", authFile("newline", id("web1\npeer=web2"), false), "is not a peer name"},
		{"key ID peer=", authFile("peereq", id("web1 peer=web2"), false), "is not a peer name"},
		{"key ID with a quote", authFile("quote", id(`web1"`), false), "is not a peer name"},
		{"key ID with shell", authFile("shell", id("$(id)"), false), "is not a peer name"},
		{"key ID path", authFile("path", id("../../etc/passwd"), false), "is not a peer name"},
		{"key ID dot dot", authFile("dotdot", id(".."), false), "is not a peer name"},
		{"key ID empty", authFile("empty", id(""), false), "is not a peer name"},
		{"key ID of 65 characters", authFile("long", id(strings.Repeat("w", 65)), false), "is not a peer name"},
		{"key ID of 100000 characters", authFile("huge", id(strings.Repeat("w", 100000)), false), "larger than"},
		{"key ID not ASCII", authFile("utf8", id("wéb1"), false), "is not a peer name"},
		{"key ID with NUL", authFile("nul", id("web1\x00"), false), "is not a peer name"},
		{"key ID with ANSI escape", authFile("ansi", id("\x1b[31mweb1"), false), "is not a peer name"},
		{"expired", authFile("expired", func(c *ssh.Certificate) { c.ValidBefore = 1 }, false), "not valid now"},
		{"host certificate", authFile("host", func(c *ssh.Certificate) { c.CertType = ssh.HostCert }, false), "not a user certificate"},
		{"plain key", authFile("plain", nil, true), "plain ssh-ed25519 key"},
		{"no SSH_USER_AUTH", "", "SSH_USER_AUTH is not set"},
		{"SSH_USER_AUTH relative", "sshauth", "not an absolute path"},
		{"SSH_USER_AUTH a directory", dir, "not a plain file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "received.log")
			before := []byte("2026-11-24T10:00:00+00:00 banpush: ban 203.0.113.1 peer=old\n")
			writeFile(t, log, string(before))
			for _, req := range []string{"banpush-v1 ban", "banpush-v1 ping"} {
				vars := map[string]string{"SSH_ORIGINAL_COMMAND": req, "SSH_CONNECTION": "198.51.100.99 40000 192.0.2.1 22", "SSH_USER_AUTH": tt.auth}
				code, stdout, stderr := runReceiveEnv(t, vars, []byte("203.0.113.7\n"), "--peer-from-cert", "--log", log)
				if code != exitConfig || stdout != "" || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "nothing read, nothing written") {
					t.Errorf("%s: exit %d stdout %q stderr %q; want 78, nothing, %q", req, code, stdout, stderr, tt.want)
				}
				if n := strings.Count(stderr, "\n"); n > 2 || strings.ContainsAny(strings.ReplaceAll(stderr, "\n", ""), "\x00\x1b\r") {
					t.Errorf("%s: stderr is not two clean lines: %q", req, stderr)
				}
			}
			if b, _ := os.ReadFile(log); !bytes.Equal(b, before) {
				t.Errorf("log changed: %q", b)
			}
		})
	}
	// The same receiver with a good certificate, for contrast.
	log := filepath.Join(dir, "good.log")
	vars := map[string]string{"SSH_ORIGINAL_COMMAND": "banpush-v1 ban", "SSH_CONNECTION": "198.51.100.99 40000 192.0.2.1 22", "SSH_USER_AUTH": authFile("good", id("web-1.example"), false)}
	code, stdout, stderr := runReceiveEnv(t, vars, []byte("203.0.113.7\n"), "--peer-from-cert", "--log", log)
	if code != 0 || stdout != "banpush-v1 ok accepted=1 refused=0\n" {
		t.Fatalf("good certificate: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(log); !strings.HasSuffix(string(b), " banpush: ban 203.0.113.7 peer=web-1.example\n") {
		t.Errorf("log %q, want the ban under the certificate's name", b)
	}
}

func TestReceiveBadArgv(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"relative log", []string{"--peer", "web1", "--log", "received.log"}},
		{"unsafe peer", []string{"--peer", "web1;id", "--log", "/tmp/x.log"}},
		{"bad ignore", []string{"--peer", "web1", "--log", "/tmp/x.log", "--ignore", "nonsense"}},
		{"zero burst", []string{"--peer", "web1", "--log", "/tmp/x.log", "--max-burst", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runReceive(t, ptr("banpush-v1 ban"), "", []byte("203.0.113.7\n"), tt.args...)
			if code != 78 || stdout != "" || !strings.Contains(stderr, "banpush: hint:") {
				t.Errorf("exit %d stdout %q stderr %q, want 78 with a hint", code, stdout, stderr)
			}
		})
	}
}

// TestReceiveSlowBatch: a peer that never closes its end of the batch is
// cut off after the read deadline with exit 65, nothing written, even
// though stdin is a blocking pipe, as it is under sshd.
func TestReceiveSlowBatch(t *testing.T) {
	old := receiveLimits
	receiveLimits.BatchTimeout = 200 * time.Millisecond
	t.Cleanup(func() { receiveLimits = old })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte("203.0.113.7\n203.0.113.8")); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "received.log")
	var out, errb bytes.Buffer
	env := &Env{
		Stdin: r, Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "SSH_ORIGINAL_COMMAND" {
				return "banpush-v1 ban"
			}
			return ""
		},
		Now: time.Now,
	}
	done := make(chan int)
	go func() { done <- Main([]string{"receive", "--peer", "web1", "--log", log}, env) }()
	select {
	case code := <-done:
		if code != 65 || out.Len() != 0 || !strings.Contains(errb.String(), "timeout") {
			t.Errorf("exit %d stdout %q stderr %q, want 65, nothing, a timeout", code, out.String(), errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("receive still reading after 20 s: no deadline on stdin")
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("log written: %v", err)
	}
}

// TestReceivePeerAddresses: the addresses in the from= options of the
// receiving account's authorized_keys are the fleet's own hosts, and no
// peer may ban them here.
func TestReceivePeerAddresses(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, ".ssh", "authorized_keys"),
		`restrict,from="203.0.113.50,2001:db8:50::/48",command="/usr/bin/banpush receive --peer web1 --log /x" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl banpush-peer=web1`+"\n")
	log := filepath.Join(t.TempDir(), "received.log")
	code, stdout, stderr := runReceiveHome(t, ptr("banpush-v1 ban"), "198.51.100.99 40000 192.0.2.1 22", home,
		[]byte("203.0.113.50\n2001:db8:50::1\n64:ff9b::203.0.113.50\n203.0.113.51\n"), "--peer", "web2", "--log", log)
	if code != 0 || stdout != "banpush-v1 ok accepted=1 refused=3\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the three peer addresses refused", code, stdout, stderr)
	}
	for _, l := range []string{"line 1", "line 2", "line 3"} {
		if !strings.Contains(stderr, "banpush: "+l+": refused: address of a peer\n") {
			t.Errorf("stderr %q, want %s refused as the address of a peer", stderr, l)
		}
	}
}

// TestReceiveTooManySessions: a peer that already runs its share of
// receivers is told to try again later (75), and nothing is read or
// written.
func TestReceiveTooManySessions(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slots of one process are distinct only with Linux's open file description locks")
	}
	log := filepath.Join(t.TempDir(), "received.log")
	for range receive.DefaultMaxSessions {
		s, err := receive.AcquireSession(log, "web1", receive.DefaultMaxSessions)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Release()
	}
	code, stdout, stderr := runReceive(t, ptr("banpush-v1 ban"), "198.51.100.99 40000 192.0.2.1 22", []byte("203.0.113.7\n"),
		"--peer", "web1", "--log", log)
	if code != exitTemp || stdout != "" || !strings.Contains(stderr, "too many sessions from this peer at once") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 75 and why", code, stdout, stderr)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("log written: %v", err)
	}
	code, stdout, _ = runReceive(t, ptr("banpush-v1 ban"), "198.51.100.99 40000 192.0.2.1 22", []byte("203.0.113.7\n"),
		"--peer", "web2", "--log", log)
	if code != 0 || !strings.Contains(stdout, "accepted=1") {
		t.Errorf("another peer: exit %d, stdout %q", code, stdout)
	}
}

// TestReceiveStreamLifetime: a stream ends at its lifetime, however the
// sender keeps it alive (here, a byte every 50 ms, well within the idle
// timeout), after answering the batches it completed.
func TestReceiveStreamLifetime(t *testing.T) {
	old := receiveLimits
	receiveLimits.StreamLifetime = 300 * time.Millisecond
	t.Cleanup(func() { receiveLimits = old })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte("203.0.113.7\n\n")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				w.Write([]byte("2")) // a record that never ends
			}
		}
	}()
	log := filepath.Join(t.TempDir(), "received.log")
	var out, errb bytes.Buffer
	env := &Env{Stdin: r, Stdout: &out, Stderr: &errb, Now: time.Now, Getenv: func(k string) string {
		if k == "SSH_ORIGINAL_COMMAND" {
			return "banpush-v1 stream"
		}
		return ""
	}}
	done := make(chan int)
	go func() { done <- Main([]string{"receive", "--peer", "web1", "--log", log}, env) }()
	select {
	case code := <-done:
		if code != 0 || out.String() != "banpush-v1 ok accepted=1 refused=0\n" {
			t.Errorf("exit %d stdout %q stderr %q, want 0 and the first batch answered", code, out.String(), errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream still runs after 20 s, with a lifetime of 300 ms")
	}
}
