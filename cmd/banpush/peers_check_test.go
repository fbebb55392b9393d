package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"golang.org/x/crypto/ssh"
)

// runInput runs banpush with stdin and returns its stdout, exit code and
// stderr.
func (c *cluster) runInput(stdin string, args ...string) (stdout string, code int, stderr string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := c.cmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatal(err)
	}
	return o.String(), code, e.String()
}

// check runs "peers check --json" with args and returns the report by peer.
func (c *cluster) check(wantCode int, args ...string) map[string]checkReport {
	c.t.Helper()
	out, code, stderr := c.runCode(append([]string{"peers", "check", "--json", "--timeout", "5s"}, args...)...)
	if code != wantCode {
		c.t.Fatalf("peers check %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, stderr)
	}
	var reports []checkReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		c.t.Fatalf("peers check --json: %v\n%s", err, out)
	}
	got := map[string]checkReport{}
	for _, r := range reports {
		got[r.Peer] = r
	}
	return got
}

// TestPeersCheckTrust is the acceptance test of "peers check" and "peers
// trust" against four real sshd peers: a working receiver, one that is down,
// one whose host key is not in known_hosts, and one whose key opens a plain
// shell. Trusting the third makes it ok.
func TestPeersCheckTrust(t *testing.T) {
	c := newCluster(t, 4)
	working, down, unknown, plain := c.peers[0], c.peers[1], c.peers[2], c.peers[3]
	down.sshd.Stop()
	var kh strings.Builder
	for _, p := range c.peers {
		if p != unknown {
			kh.WriteString(p.sshd.KnownHostsLines())
		}
	}
	writeFile(t, c.knownHost, kh.String())
	pub, err := os.ReadFile(c.pub)
	if err != nil {
		t.Fatal(err)
	}
	plain.sshd.SetAuthorizedKeys(string(pub)) // no command=: a login shell

	got := c.check(exitPeers)
	want := map[string]struct{ result, hint string }{
		working.name: {"ok", ""},
		down.name:    {"unreachable", "is sshd running"},
		unknown.name: {"hostkey-unknown", "banpush peers trust " + unknown.name},
		plain.name:   {"not-banpush", "lacks the forced command"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d reports, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		r := got[name]
		if r.Result != w.result {
			t.Errorf("%s: got result %q, want %q (error %q)", name, r.Result, w.result, r.Error)
		}
		if !strings.Contains(r.Hint, w.hint) || (w.hint == "") != (r.Hint == "") {
			t.Errorf("%s: got hint %q, want one containing %q", name, r.Hint, w.hint)
		}
		if ok := w.result == "ok"; ok != (r.RTTms != nil) || ok != (r.Version != "") || ok != (r.Error == "") {
			t.Errorf("%s: got rtt_ms %v, version %q, error %q; want rtt and version only when ok, error only when not", name, r.RTTms, r.Version, r.Error)
		}
	}
	if fp := ssh.FingerprintSHA256(unknown.sshd.HostKeys[0]); !strings.Contains(got[unknown.name].Error, fp) {
		t.Errorf("hostkey-unknown error %q does not show the fingerprint %s", got[unknown.name].Error, fp)
	}

	// Trust the unknown peer's key: it is shown, appended, and then the
	// peer is ok.
	before := readFile(t, c.knownHost)
	out := c.run(nil, "peers", "trust", unknown.name, "--yes")
	for _, s := range []string{ssh.FingerprintSHA256(unknown.sshd.HostKeys[0]), "ssh-ed25519", c.knownHost, "[" + unknown.sshd.Host + "]:" + strconv.Itoa(unknown.sshd.Port)} {
		if !strings.Contains(out, s) {
			t.Errorf("peers trust output lacks %q:\n%s", s, out)
		}
	}
	after := readFile(t, c.knownHost)
	if wantKH := before + unknown.sshd.KnownHostsLines(); after != wantKH {
		t.Errorf("known_hosts after trust:\n%s\nwant:\n%s", after, wantKH)
	}
	if r := c.check(exitOK, unknown.name)[unknown.name]; r.Result != "ok" {
		t.Errorf("after trust: got %q (%s), want ok", r.Result, r.Error)
	}

	// Trusting again changes nothing.
	_, code, stderr := c.runInput("", "peers", "trust", unknown.name)
	if code != exitOK || !strings.Contains(stderr, "already in known_hosts") {
		t.Errorf("trust again: exit %d, stderr %q; want 0 and 'already in known_hosts'", code, stderr)
	}
	if got := readFile(t, c.knownHost); got != after {
		t.Errorf("trust again changed known_hosts:\n%s", got)
	}

	// The human table has one aligned line per peer.
	table, code, stderr := c.runCode("peers", "check", "--timeout", "5s")
	t.Logf("peers check:\n%s%s", table, stderr)
	if code != exitPeers {
		t.Errorf("peers check: exit %d, want %d\n%s", code, exitPeers, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "PEER ") {
		t.Fatalf("got table:\n%s\nwant a header and 4 lines", table)
	}
	col := strings.Index(lines[0], "RESULT")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("line %q: RESULT column not at %d", l, col)
		}
	}
	if !strings.Contains(stderr, "banpush: hint: "+plain.name+": ") {
		t.Errorf("stderr lacks the hint for %s:\n%s", plain.name, stderr)
	}
}

// TestPeersTrustAnswer: without --yes the key is added only after "y" or
// "yes" on stdin; anything else, or no answer, refuses.
func TestPeersTrustAnswer(t *testing.T) {
	c := newCluster(t, 1)
	p := c.peers[0]
	tests := []struct {
		name  string
		stdin string
		code  int
		msg   string
	}{
		{"no answer", "", exitFailure, "no answer on stdin"},
		{"no", "n\n", exitFailure, "refused"},
		{"other", "ok\n", exitFailure, "refused"},
		{"yes", "yes\n", exitOK, "added the ssh-ed25519 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, c.knownHost, "")
			_, code, stderr := c.runInput(tt.stdin, "peers", "trust", p.name)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tt.code, tt.msg)
			}
			if !strings.Contains(stderr, "Add this key to "+c.knownHost+"? [y/N]") {
				t.Errorf("stderr lacks the question:\n%s", stderr)
			}
			want := ""
			if tt.code == exitOK {
				want = p.sshd.KnownHostsLines()
			}
			if got := readFile(t, c.knownHost); got != want {
				t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestPeersTrustSeveral: several peers are asked about in turn, one stdin
// line each, and --all trusts every peer; a failure does not stop the
// others, and the exit status is the first failure's.
func TestPeersTrustSeveral(t *testing.T) {
	c := newCluster(t, 3)
	p1, p2, p3 := c.peers[0], c.peers[1], c.peers[2]
	writeFile(t, c.knownHost, "")
	_, code, stderr := c.runInput("y\nn\ny\n", "peers", "trust", p1.name, p2.name, p3.name)
	if code != exitFailure || !strings.Contains(stderr, "refused: the key of peer "+p2.name+" was not added") {
		t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %s refused", code, stderr, exitFailure, p2.name)
	}
	if got, want := readFile(t, c.knownHost), p1.sshd.KnownHostsLines()+p3.sshd.KnownHostsLines(); got != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
	writeFile(t, c.knownHost, "")
	p3.sshd.Stop()
	_, code, stderr = c.runInput("", "peers", "trust", "--all", "--yes")
	if code != exitPeers || !strings.Contains(stderr, "peer "+p3.name) {
		t.Errorf("--all with %s down: got exit %d, stderr:\n%s\nwant exit %d", p3.name, code, stderr, exitPeers)
	}
	if got, want := readFile(t, c.knownHost), p1.sshd.KnownHostsLines()+p2.sshd.KnownHostsLines(); got != want {
		t.Errorf("known_hosts after --all:\n%s\nwant:\n%s", got, want)
	}
}

// TestPeersTrustChangedKey: a host whose key differs from known_hosts is
// hostkey-changed, and trust refuses to replace the key, naming the line.
func TestPeersTrustChangedKey(t *testing.T) {
	c := newCluster(t, 1)
	p := c.peers[0]
	pk, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := ssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	stale := "# another host\n[192.0.2.1]:22 " + string(ssh.MarshalAuthorizedKey(p.sshd.HostKeys[0])) +
		"[" + p.sshd.Host + "]:" + strconv.Itoa(p.sshd.Port) + " " + string(ssh.MarshalAuthorizedKey(wrong))
	writeFile(t, c.knownHost, stale)

	r := c.check(exitPeers)[p.name]
	if r.Result != "hostkey-changed" || !strings.Contains(r.Hint, "line 3 from "+c.knownHost) {
		t.Errorf("got %q, hint %q; want hostkey-changed naming line 3 of %s", r.Result, r.Hint, c.knownHost)
	}
	_, code, stderr := c.runInput("y\n", "peers", "trust", p.name, "--yes")
	if code != exitFailure || !strings.Contains(stderr, "has changed") || !strings.Contains(stderr, "remove line 3 of "+c.knownHost) {
		t.Errorf("trust: exit %d, stderr:\n%s\nwant 1, 'has changed' and the line to remove", code, stderr)
	}
	if got := readFile(t, c.knownHost); got != stale {
		t.Errorf("trust changed known_hosts:\n%s", got)
	}
}

// TestPeersTrustCreatesFile: a missing known_hosts file and its directory
// are created with private modes.
func TestPeersTrustCreatesFile(t *testing.T) {
	c := newCluster(t, 1)
	dir := filepath.Join(c.dir, "new")
	kh := filepath.Join(dir, "known_hosts")
	inv := strings.Replace(readFile(t, c.inventory), c.knownHost, kh, 1)
	writeFile(t, c.inventory, inv)
	c.run(nil, "peers", "trust", c.peers[0].name, "--yes")
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, kh: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: got mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if got, want := readFile(t, kh), c.peers[0].sshd.KnownHostsLines(); got != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
	c.check(exitOK)
}

// TestPeersCheckTimeout: a peer that accepts TCP but never speaks is
// reported as timeout.
func TestPeersCheckTimeout(t *testing.T) {
	c := &cluster{t: t, bin: banpushBin(t), dir: t.TempDir()}
	c.inventory = filepath.Join(c.dir, "peers")
	c.spool = filepath.Join(c.dir, "spool")
	writeFile(t, c.inventory, "Host hang\n  HostName 127.0.0.1\n  Port "+strconv.Itoa(blackhole(t))+"\n  User nobody\n  UserKnownHostsFile "+filepath.Join(c.dir, "kh")+"\n")
	out, code, stderr := c.runCode("peers", "check", "--json", "--timeout", "300ms")
	if code != exitPeers || !strings.Contains(out, `"result": "timeout"`) {
		t.Errorf("got exit %d, stdout:\n%s\nstderr:\n%s\nwant 3 and a timeout", code, out, stderr)
	}
}

// TestPeersCheckCannotWrite: a receiver whose account cannot write its log
// (a log of root's, mode 0644) is found by 'peers check', which says so with
// its own class and the fix, and 'push --wait' reports the same, not
// "busy": the bans stay queued, and go once the log is the account's again.
func TestPeersCheckCannotWrite(t *testing.T) {
	c := newCluster(t, 1)
	p := c.peers[0]
	writeFile(t, p.log, "")
	if err := os.Chmod(p.log, 0o644); err != nil { // root's: the account may only read it
		t.Fatal(err)
	}

	r := c.check(exitPeers)[p.name]
	if r.Result != "receiver-cannot-write" || !strings.Contains(r.Error, "permission denied") || !strings.Contains(r.Hint, "setup-account") {
		t.Errorf("peers check: got result %q, error %q, hint %q; want receiver-cannot-write, permission denied and the fix", r.Result, r.Error, r.Hint)
	}

	out, code, stderr := c.runCode("push", "--wait", "--timeout", "5s", "203.0.113.50")
	if code != exitPeers || !regexp.MustCompile(`(?m)^`+p.name+` +receiver-cannot-write .*cannot write the log`).MatchString(out) {
		t.Errorf("push --wait: exit %d, want %d and receiver-cannot-write\n%s%s", code, exitPeers, out, stderr)
	}
	if strings.Contains(stderr, "busy") || !strings.Contains(stderr, "setup-account") {
		t.Errorf("push --wait hints:\n%s\nwant the fix for a log the account cannot write, not busy", stderr)
	}
	if q := c.queued()[p.name]; q != 1 {
		t.Errorf("status: %d queued, want 1", q)
	}

	sshdtest.GiveAccount(t, p.log)
	if r := c.check(exitOK)[p.name]; r.Result != "ok" {
		t.Errorf("once the log is the account's: got %q (%s), want ok", r.Result, r.Error)
	}
	c.run(nil, "flush", "--timeout", "30s")
	c.waitLogged(c.peers, []string{"203.0.113.50"}, 5*time.Second)
}

// TestCheckHintCertificateFleet: where the peer is reached with a
// certificate (a KEY-cert.pub beside the key, or a CertificateFile), the
// hints for auth, hostkey-unknown and hostkey-changed give the certificate
// fleet's fix (sign again with the fleet's CA, setup-host.sh), not the
// per-key one (authorize --peer, peers trust); without one, the per-key
// fix.
func TestCheckHintCertificateFleet(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	writeFile(t, key, "")
	writeFile(t, key+"-cert.pub", "")
	plain := filepath.Join(dir, "plain")
	writeFile(t, plain, "")
	g := &Globals{Inventory: "/etc/banpush/peers"}
	target := func(files, certs []string) sshpush.Target {
		return sshpush.Target{Name: "h1", HostName: "h1.example.com", User: "banpush", IdentityFiles: files, CertificateFiles: certs,
			KnownHostsFiles: []string{"/etc/banpush/known_hosts"}}
	}
	tests := []struct {
		name      string
		target    sshpush.Target
		class     sshpush.Class
		want, not []string
	}{
		{"auth, certificate beside the key", target([]string{key}, nil), sshpush.ClassAuth,
			[]string{"ssh-keygen -Lf " + key + "-cert.pub", "user CA", "setup-host.sh --certs", "cert-authority line"}, []string{"authorize --peer", "--from"}},
		{"auth, CertificateFile", target([]string{plain}, []string{"/etc/banpush/fleet-cert.pub"}), sshpush.ClassAuth,
			[]string{"ssh-keygen -Lf /etc/banpush/fleet-cert.pub", "user CA"}, []string{"authorize --peer"}},
		{"auth, per key", target([]string{plain}, nil), sshpush.ClassAuth,
			[]string{"banpush authorize --peer", "--from"}, []string{"ssh-keygen -Lf"}},
		{"hostkey-unknown, certificate", target([]string{key}, nil), sshpush.ClassHostKeyUnknown,
			[]string{"host CA", "ssh-keygen -s host_ca -h -I h1 -n h1.example.com", "@cert-authority", "/etc/banpush/known_hosts", "setup-host.sh"}, []string{"peers trust"}},
		{"hostkey-unknown, per key", target([]string{plain}, nil), sshpush.ClassHostKeyUnknown,
			[]string{"banpush peers trust h1"}, []string{"host CA"}},
		{"hostkey-changed, certificate", target([]string{key}, nil), sshpush.ClassHostKeyChanged,
			[]string{"host CA", "setup-host.sh --certs"}, []string{"peers trust"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hint := checkHint(tt.class, roster.Peer{Name: "h1", Target: tt.target}, errors.New("x"), 10*time.Second, g)
			for _, w := range tt.want {
				if !strings.Contains(hint, w) {
					t.Errorf("hint %q lacks %q", hint, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(hint, n) {
					t.Errorf("hint %q has %q", hint, n)
				}
			}
		})
	}
}
