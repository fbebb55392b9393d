package main

// Fleet tests (issue 11): banpush set up for a whole fleet with SSH
// certificates, against real OpenSSH sshd. One user CA signs every host's
// pushing key (its key ID is the host's name); one host CA signs every
// host's sshd key. Every receiver then has the same authorized_keys line
// (cert-authority, from 'banpush authorize --cert-authority'), every pusher
// the same known_hosts line (@cert-authority) and the same inventory, byte
// for byte.
//
// Twenty hosts share 127.0.0.1, so what differs between real hosts is given
// to each its own way: every sshd runs in a mount namespace of its own in
// which the host's directory is bind-mounted on the one log directory that
// authorized_keys names, and every banpush command a host runs runs in a
// UTS namespace of its own whose hostname is the host's name, which picks
// its key and known_hosts (%L in the inventory) and makes it its own --self.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/status"
	"github.com/banpush/banpush/sshpush/testkit/sshdtest"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"golang.org/x/crypto/ssh"
)

// fleetTimeout bounds every banpush run of these tests, and --timeout of
// push --wait and flush: well above what a run takes, so that only a hang
// reaches it.
const fleetTimeout = 60 * time.Second

// needFleet skips (fails, in CI) unless the machine can run the fleet
// tests.
func needFleet(t *testing.T, why string) {
	t.Helper()
	sshdtest.Require(t)
	testenv.Need(t, testenv.Root(why), testenv.Command("unshare", "util-linux"), testenv.Command("hostname", "hostname"))
}

// keygen runs ssh-keygen with args and fails the test if it fails.
func keygen(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newKeyPair makes an ed25519 key pair dir/name and dir/name.pub with
// ssh-keygen, as an administrator would, and returns the private key's
// path.
func newKeyPair(t *testing.T, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	keygen(t, "-t", "ed25519", "-N", "", "-C", name, "-f", path)
	return path
}

// signCert signs key's public half (key.pub) with the CA whose private key
// is ca, and fails the test if it cannot.
func signCert(t *testing.T, ca, key string, c sshdtest.Cert) {
	t.Helper()
	if _, err := sshdtest.SignCert(ca, key+".pub", c); err != nil {
		t.Fatal(err)
	}
}

// hostCertSigner returns a Config.HostCertificate that has ca sign the
// host key for host certificate c.
func hostCertSigner(ca string, c sshdtest.Cert) func(string) (string, error) {
	c.Host = true
	return func(pub string) (string, error) { return sshdtest.SignCert(ca, pub, c) }
}

// certAuthorityLine is the known_hosts line that trusts ca for every host.
func certAuthorityLine(t *testing.T, ca string) string {
	t.Helper()
	return "@cert-authority * " + readFile(t, ca+".pub")
}

// banLine is one line of a receiver's log: an address and the peer that
// sent it.
type banLine struct{ addr, peer string }

// readBans returns the lines of the receiver's log at path, in order; a
// missing log has none. Any other line, and a last line without its
// newline, fail the test.
func readBans(t *testing.T, path string) []banLine {
	t.Helper()
	bans, partial := readCompleteBans(t, path)
	if partial != "" {
		t.Fatalf("%s ends in a partial line %q", path, partial)
	}
	return bans
}

// readCompleteBans is readBans for a log that receivers may be writing:
// a last line without its newline may be a write in progress, and is
// returned apart.
func readCompleteBans(t *testing.T, path string) (bans []banLine, partial string) {
	t.Helper()
	lines := strings.Split(readFile(t, path), "\n")
	partial = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		f := strings.Fields(l)
		if len(f) < 5 || f[1]+" "+f[2] != "banpush: ban" || !strings.HasPrefix(f[4], "peer=") {
			t.Fatalf("%s: foreign line %q", path, l)
		}
		bans = append(bans, banLine{addr: f[3], peer: strings.TrimPrefix(f[4], "peer=")})
	}
	return bans, partial
}

// decodeJSON decodes what a banpush command printed with --json.
func decodeJSON[T any](t *testing.T, what, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	return v
}

// fleetHost is one host of the fleet: a pusher (spool, key, known_hosts)
// and a receiver (sshd and its log).
type fleetHost struct {
	name   string // h01...: hostname, key ID, host certificate principal, peer name
	dir    string // its key, certificate, known_hosts and spool
	spool  string
	logDir string // bind-mounted on the fleet's log directory for its sshd
	log    string // its receiver's log, as the test sees it
	sshd   *sshdtest.Server
}

// fleet is n hosts that all push to each other.
type fleet struct {
	t         *testing.T
	bin       string
	dir       string
	inventory string   // the one inventory, at the same path on every host
	logDir    string   // the one log directory authorized_keys names
	authLines []string // what 'banpush authorize' printed on each host
	hosts     []*fleetHost
}

// newCertFleet sets up n hosts as the README's fleet setup does and starts
// their sshd, all at once. authorize are more arguments of 'banpush
// authorize' for the one authorized_keys line (a policy).
func newCertFleet(t *testing.T, n int, authorize ...string) *fleet {
	t.Helper()
	needFleet(t, "a mount and a UTS namespace per host")
	f := &fleet{t: t, bin: banpushBin(t), dir: t.TempDir()}
	stopProcsAtEnd(t)
	f.inventory = filepath.Join(f.dir, "peers")
	f.logDir = filepath.Join(f.dir, "var-log-banpush")
	if err := os.Mkdir(f.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(f.dir, "ca")
	userCA, hostCA := newKeyPair(t, ca, "user_ca"), newKeyPair(t, ca, "host_ca")
	knownHosts := certAuthorityLine(t, hostCA)

	var cfgs []sshdtest.Config
	for i := 0; i < n; i++ {
		h := &fleetHost{name: fmt.Sprintf("h%02d", i+1)}
		h.dir = filepath.Join(f.dir, "hosts", h.name)
		h.spool = filepath.Join(h.dir, "spool")
		h.logDir = filepath.Join(h.dir, "var-log-banpush")
		h.log = filepath.Join(h.logDir, "banpush.log")
		if err := os.MkdirAll(h.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		sshdtest.GiveAccount(t, h.logDir)
		key := newKeyPair(t, h.dir, "id_ed25519")
		signCert(t, userCA, key, sshdtest.Cert{ID: h.name, Principals: []string{"banpush"}})
		writeFile(t, filepath.Join(h.dir, "known_hosts"), knownHosts)
		f.hosts = append(f.hosts, h)

		line := f.run(h, append([]string{"authorize", "--cert-authority", userCA + ".pub",
			"--log", filepath.Join(f.logDir, "banpush.log"), "--binary", f.bin}, authorize...)...)
		f.authLines = append(f.authLines, line)
		cfgs = append(cfgs, sshdtest.Config{
			AuthorizedKeys:  line,
			Extra:           []string{"ExposeAuthInfo yes"},
			HostCertificate: hostCertSigner(hostCA, sshdtest.Cert{ID: h.name, Principals: []string{h.name}}),
			Exec:            sshdtest.BindMounted(h.logDir, f.logDir),
		})
	}
	for i, s := range sshdtest.StartMany(t, cfgs...) {
		h := f.hosts[i]
		h.sshd = s
		// Registered after sshd's: the senders stop first.
		t.Cleanup(func() {
			if err := stopSpoolProcs(h.spool); err != nil {
				t.Error(err)
			}
		})
	}

	var inv strings.Builder
	fmt.Fprintf(&inv, "# The fleet's inventory: the same file on every host.\nHost *\n  User %s\n"+
		"  IdentityFile %[2]s/hosts/%%L/id_ed25519\n  IdentitiesOnly yes\n  UserKnownHostsFile %[2]s/hosts/%%L/known_hosts\n  ConnectTimeout 10\n",
		loginUser(t), f.dir)
	for _, h := range f.hosts {
		fmt.Fprintf(&inv, "\nHost %s\n  HostName %s\n  Port %d\n  HostKeyAlias %s\n", h.name, h.sshd.Host, h.sshd.Port, h.name)
	}
	writeFile(t, f.inventory, inv.String())
	return f
}

// cmd returns banpush with args as host h runs it: in a UTS namespace
// whose hostname is h's name, with the fleet's inventory and h's spool. A
// sender it starts stays in that namespace.
func (f *fleet) cmd(ctx context.Context, h *fleetHost, args ...string) *exec.Cmd {
	sh := []string{"--uts", "--", "/bin/sh", "-c", `hostname "$1" && shift && exec "$@"`, "sh", h.name, f.bin}
	cmd := exec.CommandContext(ctx, "unshare", append(sh, args...)...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BANPUSH_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "BANPUSH_INVENTORY="+f.inventory, "BANPUSH_SPOOL="+h.spool)
	return cmd
}

// runCode runs banpush on h from any goroutine (it never calls t) and
// returns its exit status and output.
func (f *fleet) runCode(h *fleetHost, args ...string) (stdout string, code int, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout+30*time.Second)
	defer cancel()
	cmd := f.cmd(ctx, h, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
		return o.String(), ee.ExitCode(), e.String(), nil
	}
	return o.String(), 0, e.String(), err
}

// run runs banpush on h, which must succeed, and returns its stdout.
func (f *fleet) run(h *fleetHost, args ...string) string {
	f.t.Helper()
	out, code, stderr, err := f.runCode(h, args...)
	if err != nil || code != 0 {
		f.t.Fatalf("%s: banpush %s: exit %d, %v, want 0\nstdout:\n%s\nstderr:\n%s", h.name, strings.Join(args, " "), code, err, out, stderr)
	}
	return out
}

// others returns every host but h, in order.
func (f *fleet) others(h *fleetHost) []string {
	var names []string
	for _, o := range f.hosts {
		if o != h {
			names = append(names, o.name)
		}
	}
	return names
}

// TestFleetCertificates: 20 hosts set up with one user CA and one host CA
// share one authorized_keys line, one known_hosts line and one inventory,
// byte for byte; a ban pushed from any of them reaches the 19 others, each
// log line names the origin from its certificate, and no host sends to
// itself.
//
// It takes about 15 s on two cores: full tier (CI runs it).
func TestFleetCertificates(t *testing.T) {
	testenv.Slow(t)
	const n = 20
	f := newCertFleet(t, n)

	// One authorized_keys line for every receiver, one known_hosts line
	// for every pusher.
	line := f.authLines[0]
	if !strings.HasPrefix(line, `cert-authority,principals="banpush",`) || strings.Count(line, "\n") != 1 ||
		!strings.Contains(line, " receive --peer-from-cert ") {
		t.Fatalf("banpush authorize --cert-authority printed %q, want one cert-authority line with principals=\"banpush\" and receive --peer-from-cert", line)
	}
	if strings.Contains(line, "--peer ") {
		t.Errorf("the authorized_keys line names a peer: %q", line)
	}
	for i, h := range f.hosts {
		if f.authLines[i] != line {
			t.Errorf("%s: banpush authorize printed\n%q, %s printed\n%q", h.name, f.authLines[i], f.hosts[0].name, line)
		}
		if got := readFile(t, h.sshd.AuthorizedKeysPath()); got != line {
			t.Errorf("%s: authorized_keys is %q, want %q", h.name, got, line)
		}
		kh := readFile(t, filepath.Join(h.dir, "known_hosts"))
		if !strings.HasPrefix(kh, "@cert-authority * ssh-ed25519 ") || strings.Count(kh, "\n") != 1 || kh != readFile(t, filepath.Join(f.hosts[0].dir, "known_hosts")) {
			t.Errorf("%s: known_hosts is %q, want the one @cert-authority line every host has", h.name, kh)
		}
	}

	// Pushes from several hosts at once, each of two addresses, delivered
	// in the foreground.
	origins := []*fleetHost{f.hosts[0], f.hosts[7], f.hosts[n-1]}
	pushed := map[*fleetHost][]string{}
	for i, h := range origins {
		pushed[h] = []string{fmt.Sprintf("198.51.100.%d", 110+i), docAddrs(0x1100000+i, 1)[0]}
	}
	type pushResult struct {
		out, stderr string
		code        int
		err         error
	}
	results := make([]pushResult, len(origins))
	var wg sync.WaitGroup
	for i, h := range origins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.out, r.code, r.stderr, r.err = f.runCode(h, append([]string{"push", "--wait", "--json", "--timeout", fleetTimeout.String(), "--jail", "sshd"}, pushed[h]...)...)
		}()
	}
	wg.Wait()
	for i, h := range origins {
		r := results[i]
		if r.err != nil || r.code != 0 {
			t.Fatalf("%s: push --wait: exit %d, %v\nstdout:\n%s\nstderr:\n%s", h.name, r.code, r.err, r.out, r.stderr)
		}
		reports := decodeJSON[[]peerReport](t, h.name+": push --wait --json", r.out)
		var peers []string
		for _, rep := range reports {
			peers = append(peers, rep.Peer)
			if rep.Result != "ok" || rep.Delivered != 2 || rep.Queued != 0 {
				t.Errorf("%s: push --wait: peer %s: got %s, delivered %d, queued %d, want ok, 2, 0 (%s)", h.name, rep.Peer, rep.Result, rep.Delivered, rep.Queued, rep.Error)
			}
		}
		if want := f.others(h); !slices.Equal(peers, want) {
			t.Errorf("%s: push --wait reported peers %v, want the %d others %v", h.name, peers, len(want), want)
		}
	}

	// status on each host that pushed names it as itself, and counts the
	// others' deliveries only.
	for _, h := range origins {
		st := decodeJSON[status.Report](t, h.name+": status --json", f.run(h, "status", "--json"))
		if len(st.Self) != 1 || st.Self[0].Name != h.name || !strings.Contains(st.Self[0].Reason, "hostname") {
			t.Errorf("%s: status --json: self is %+v, want %s, by its hostname", h.name, st.Self, h.name)
		}
		var peers []string
		for _, p := range st.Peers {
			peers = append(peers, p.Peer)
			if p.Delivered != 2 || p.Queued != 0 {
				t.Errorf("%s: status: peer %s: delivered %d, queued %d, want 2, 0", h.name, p.Peer, p.Delivered, p.Queued)
			}
		}
		if want := f.others(h); !slices.Equal(peers, want) {
			t.Errorf("%s: status lists peers %v, want the others %v", h.name, peers, want)
		}
	}

	// The fail2ban path: push queues, the sender it starts (in the host's
	// namespace) delivers in the background.
	bg := f.hosts[9]
	origins = append(origins, bg)
	pushed[bg] = []string{"198.51.100.120", docAddrs(0x1100100, 1)[0]}
	f.run(bg, append([]string{"push", "--jail", "sshd"}, pushed[bg]...)...)
	f.waitLogs(origins, pushed)

	// Every log holds exactly the bans of the other origins, each once and
	// named after the host that sent it, and no host ever logged in to
	// itself.
	for _, h := range f.hosts {
		var want []banLine
		for _, o := range origins {
			if o == h {
				continue
			}
			for _, a := range pushed[o] {
				want = append(want, banLine{a, o.name})
			}
		}
		got := readBans(t, h.log)
		sortBans(want)
		sortBans(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: log holds %v, want %v", h.name, got, want)
		}
		if own := "ID " + h.name + " (serial"; strings.Contains(h.sshd.Log(), own) {
			t.Errorf("%s: its sshd let in its own certificate", h.name)
		}
	}

	// peers list and peers check on a host that pushed nothing say the
	// same: it is itself, and every other peer is fine.
	h := f.hosts[2]
	var self []string
	for _, p := range decodeJSON[[]peerJSON](t, "peers list --json", f.run(h, "peers", "list", "--json")) {
		if p.Self {
			self = append(self, p.Name+": "+p.SelfReason)
		}
	}
	if len(self) != 1 || !strings.HasPrefix(self[0], h.name+": ") || !strings.Contains(self[0], "hostname") {
		t.Errorf("%s: peers list --json: self %q, want %s, by its hostname", h.name, self, h.name)
	}
	out, code, stderr, err := f.runCode(h, "peers", "check", "--json", "--timeout", fleetTimeout.String())
	if err != nil || code != 0 {
		t.Fatalf("%s: peers check: exit %d, %v\n%s%s", h.name, code, err, out, stderr)
	}
	var checked []string
	for _, r := range decodeJSON[[]checkReport](t, "peers check --json", out) {
		checked = append(checked, r.Peer)
		if r.Result != "ok" {
			t.Errorf("%s: peers check: %s: %s (%s)", h.name, r.Peer, r.Result, r.Error)
		}
	}
	if want := f.others(h); !slices.Equal(checked, want) {
		t.Errorf("%s: peers check checked %v, want the others %v", h.name, checked, want)
	}
	if !strings.Contains(stderr, "this host is "+h.name+" ") {
		t.Errorf("%s: peers check: stderr %q does not say which peer is this host", h.name, stderr)
	}
}

// waitLogs waits until every host's log holds the bans pushed from every
// other origin, or fails the test after fleetTimeout.
func (f *fleet) waitLogs(origins []*fleetHost, pushed map[*fleetHost][]string) {
	f.t.Helper()
	deadline := time.Now().Add(fleetTimeout)
	for {
		var missing []string
		for _, h := range f.hosts {
			got := map[banLine]bool{}
			bans, _ := readCompleteBans(f.t, h.log)
			for _, b := range bans {
				got[b] = true
			}
			for _, o := range origins {
				for _, a := range pushed[o] {
					if o != h && !got[banLine{a, o.name}] {
						missing = append(missing, fmt.Sprintf("%s from %s at %s", a, o.name, h.name))
					}
				}
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if len(missing) > 10 {
				missing = append(missing[:10], fmt.Sprintf("and %d more", len(missing)-10))
			}
			f.t.Fatalf("after %s, missing: %s", fleetTimeout, strings.Join(missing, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sortBans(bs []banLine) {
	slices.SortFunc(bs, func(a, b banLine) int {
		if c := strings.Compare(a.peer, b.peer); c != 0 {
			return c
		}
		return strings.Compare(a.addr, b.addr)
	})
}

// newPusher returns a pushing host that runs banpush with its own
// inventory (written from inv) and spool in dir, and stops its sender when
// the test ends.
func newPusher(t *testing.T, dir, inv string) *cluster {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: banpushBin(t), dir: dir}
	c.inventory = filepath.Join(dir, "peers")
	c.spool = filepath.Join(dir, "spool")
	writeFile(t, c.inventory, inv)
	t.Cleanup(c.stopSender)
	return c
}

// invPeer is a peer of pusherInventory: its name, its HostKeyAlias (none
// when empty) and its sshd.
type invPeer struct {
	name, alias string
	sshd        *sshdtest.Server
}

// pusherInventory is an inventory that logs in with key only and checks
// host keys against knownHosts, with one block per peer.
func pusherInventory(t *testing.T, key, knownHosts string, peers ...invPeer) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "Host *\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  ConnectTimeout 10\n",
		loginUser(t), key, knownHosts)
	for _, p := range peers {
		fmt.Fprintf(&b, "\nHost %s\n  HostName %s\n  Port %d\n", p.name, p.sshd.Host, p.sshd.Port)
		if p.alias != "" {
			fmt.Fprintf(&b, "  HostKeyAlias %s\n", p.alias)
		}
	}
	return b.String()
}

// checkOne runs 'peers check --json' for one peer and returns its report
// and the exit status.
func checkOne(t *testing.T, c *cluster, peer string) (checkReport, int) {
	t.Helper()
	out, code, stderr := c.runCode("peers", "check", "--json", "--timeout", fleetTimeout.String(), peer)
	reps := decodeJSON[[]checkReport](t, "peers check --json\nstderr:\n"+stderr, out)
	if len(reps) != 1 || reps[0].Peer != peer {
		t.Fatalf("peers check --json %s: got %+v, want one report, for %s", peer, reps, peer)
	}
	return reps[0], code
}

// sshdLog returns what s has logged, failing t (which may be a subtest of
// the test that started s) if it cannot.
func sshdLog(t *testing.T, s *sshdtest.Server) string {
	t.Helper()
	log, err := s.Daemon.Log()
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// refusal is a pusher that TestFleetRefusals tries.
type refusal struct {
	name string
	peer int // index in names: r1, or r2 without ExposeAuthInfo
	// setup signs (or not) the key dir/id_ed25519, and may revoke it.
	setup func(t *testing.T, key string)
	// wantClass is the class peers check and push --wait report; "" for
	// a pusher that must get through, whose name in the log is wantPeer.
	wantClass, wantPeer string
	// sshdSays, for a refusal by sshd, is what sshd logs; receiverSays,
	// for a refusal by the receiver (exit 78), what it says on stderr.
	sshdSays, receiverSays string
}

// certReceiver is a receiver in dir whose authorized_keys is the one line
// 'banpush authorize --cert-authority' writes for userCA: its log, and the
// sshd configuration the caller completes.
func certReceiver(t *testing.T, admin *cluster, dir, userCA, bin string) (string, sshdtest.Config) {
	t.Helper()
	log := filepath.Join(dir, "banpush.log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sshdtest.GiveAccount(t, dir)
	return log, sshdtest.Config{AuthorizedKeys: admin.run(nil, "authorize", "--cert-authority", userCA+".pub", "--log", log, "--binary", bin)}
}

// TestFleetRefusals: a receiver whose only authorized_keys line is the
// fleet's cert-authority line, behind real sshd, lets in a certificate of
// the fleet's CA for the banpush principal, valid now, not revoked, whose
// key ID is a peer name, through an sshd that exposes it - and nothing
// else: each refusal reaches the pusher as a failure of its class, and the
// log gets nothing.
func TestFleetRefusals(t *testing.T) {
	sshdtest.Require(t)
	bin := banpushBin(t)
	dir := t.TempDir()
	stopProcsAtEnd(t)
	caDir := filepath.Join(dir, "ca")
	userCA, otherCA := newKeyPair(t, caDir, "user_ca"), newKeyPair(t, caDir, "other_ca")
	krl := filepath.Join(dir, "banpush_revoked.krl")
	keygen(t, "-k", "-f", krl) // empty, as contrib/sshd/banpush.conf says

	// r1 is set up as the README says; r2 lacks ExposeAuthInfo.
	admin := newPusher(t, filepath.Join(dir, "admin"), "")
	var logs []string
	var cfgs []sshdtest.Config
	for _, r := range []struct{ name, expose string }{{"r1", "yes"}, {"r2", "no"}} {
		log, cfg := certReceiver(t, admin, filepath.Join(dir, r.name), userCA, bin)
		cfg.Extra = []string{"ExposeAuthInfo " + r.expose, "RevokedKeys " + krl}
		logs = append(logs, log)
		cfgs = append(cfgs, cfg)
	}
	servers := sshdtest.StartMany(t, cfgs...)
	knownHosts := filepath.Join(dir, "known_hosts")
	writeFile(t, knownHosts, servers[0].KnownHostsLines()+servers[1].KnownHostsLines())
	names := []string{"r1", "r2"}

	// sign returns a setup that signs the key with ca.
	sign := func(ca, id, validity string, principals ...string) func(*testing.T, string) {
		return func(t *testing.T, key string) {
			signCert(t, ca, key, sshdtest.Cert{ID: id, Principals: principals, Validity: validity})
		}
	}
	long := strings.Repeat("b", 64)
	tests := []refusal{
		{
			name:     "valid certificate",
			setup:    sign(userCA, "h01", "", "banpush"),
			wantPeer: "h01",
		},
		{
			name:     "key ID of 64 characters",
			setup:    sign(userCA, long, "", "banpush"),
			wantPeer: long,
		},
		{
			name:      "signed by another CA",
			setup:     sign(otherCA, "h02", "", "banpush"),
			wantClass: "auth", sshdSays: `ID h02 (serial 0) CA `,
		},
		{
			name:      "without the banpush principal",
			setup:     sign(userCA, "h03", "", "web"),
			wantClass: "auth", sshdSays: "Certificate does not contain an authorized principal",
		},
		{
			name:      "without principals",
			setup:     sign(userCA, "h04", ""),
			wantClass: "auth", sshdSays: "Certificate does not contain an authorized principal",
		},
		{
			name:      "expired",
			setup:     sign(userCA, "h05", "20200101:20200102", "banpush"),
			wantClass: "auth", sshdSays: "Certificate invalid: expired",
		},
		{
			name:      "not yet valid",
			setup:     sign(userCA, "h06", "+1d:+2d", "banpush"),
			wantClass: "auth", sshdSays: "Certificate invalid: not yet valid",
		},
		{
			name: "revoked by key ID",
			setup: func(t *testing.T, key string) {
				sign(userCA, "h07", "", "banpush")(t, key)
				spec := filepath.Join(filepath.Dir(key), "revoke")
				writeFile(t, spec, "id: h07\n")
				keygen(t, "-k", "-u", "-s", userCA+".pub", "-f", krl, spec)
			},
			wantClass: "auth", sshdSays: "revoked by file " + krl,
		},
		{
			name: "key revoked",
			setup: func(t *testing.T, key string) {
				sign(userCA, "h08", "", "banpush")(t, key)
				keygen(t, "-k", "-u", "-f", krl, key+".pub")
			},
			wantClass: "auth", sshdSays: "revoked by file " + krl,
		},
		{
			name:      "plain key",
			setup:     func(*testing.T, string) {},
			wantClass: "auth", sshdSays: "Failed publickey for ",
		},
		{
			name:         "ExposeAuthInfo off",
			peer:         1,
			setup:        sign(userCA, "h09", "", "banpush"),
			wantClass:    "rejected",
			receiverSays: "ExposeAuthInfo",
		},
	}
	for _, id := range []string{"bad name", "../x", strings.Repeat("a", 65), "a;b", "", "h01\nh02"} {
		tests = append(tests, refusal{
			name:      fmt.Sprintf("key ID %.20q", id),
			setup:     sign(userCA, id, "", "banpush"),
			wantClass: "rejected", receiverSays: "key ID",
		})
	}

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, s, log := names[tt.peer], servers[tt.peer], logs[tt.peer]
			pdir := filepath.Join(dir, "pushers", fmt.Sprint(i))
			key := newKeyPair(t, pdir, "id_ed25519")
			tt.setup(t, key)
			c := newPusher(t, pdir, pusherInventory(t, key, knownHosts, invPeer{name: name, sshd: s}))
			addr := docAddrs(0x1120000+i, 1)[0]
			before, nBefore := readFile(t, log), len(readBans(t, log))
			since := len(sshdLog(t, s))

			rep, code := checkOne(t, c, name)
			out, pushCode, stderr := c.runCode("push", "--wait", "--json", "--timeout", fleetTimeout.String(), addr)
			pushed := decodeJSON[[]peerReport](t, "push --wait --json\nstderr:\n"+stderr, out)
			if len(pushed) != 1 || pushed[0].Peer != name {
				t.Fatalf("push --wait --json: got %+v, want one report, for %s", pushed, name)
			}
			got := pushed[0]

			if tt.wantClass == "" {
				if code != 0 || rep.Result != "ok" {
					t.Fatalf("peers check: exit %d, %s (%s), want 0, ok", code, rep.Result, rep.Error)
				}
				if pushCode != 0 || got.Result != "ok" || got.Delivered != 1 {
					t.Fatalf("push --wait: %s: got %s, delivered %d (%s), want ok, 1", name, got.Result, got.Delivered, got.Error)
				}
				want := []banLine{{addr, tt.wantPeer}}
				if added := readBans(t, log)[nBefore:]; !slices.Equal(added, want) {
					t.Errorf("the log gained %v, want %v", added, want)
				}
				return
			}

			if code != exitPeers || rep.Result != tt.wantClass || rep.Hint == "" {
				t.Errorf("peers check: exit %d, %s, hint %q, want %d, %s and a hint\n%s", code, rep.Result, rep.Hint, exitPeers, tt.wantClass, rep.Error)
			}
			if pushCode != exitPeers || got.Result != tt.wantClass || got.Queued != 1 || got.Delivered != 0 {
				t.Errorf("push --wait: %s: exit %d, %s, queued %d, delivered %d, want %d, %s, 1, 0\n%s", name, pushCode, got.Result, got.Queued, got.Delivered, exitPeers, tt.wantClass, got.Error)
			}
			if tt.receiverSays != "" {
				// The receiver's own exit status and message, through
				// OpenSSH's client: one error, which says why, and a hint.
				args, err := s.Daemon.SSHArgs(key, knownHosts) // s fails its own test, not this one
				if err != nil {
					t.Fatal(err)
				}
				r := runClient(t, "", "ssh", append(args, "banpush-v1 ping")...)
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				if r.code != exitConfig || !strings.Contains(r.stderr, tt.receiverSays) || !strings.HasPrefix(lines[0], "banpush: error: ") ||
					len(lines) > 2 || len(lines) == 2 && !strings.HasPrefix(lines[1], "banpush: hint: ") {
					t.Errorf("ssh ... banpush-v1 ping: exit %d, stderr %q, want %d, one error line, at most one hint, and %q", r.code, r.stderr, exitConfig, tt.receiverSays)
				}
				// The pusher relays the receiver's status and error.
				quoted := strconv.Quote(lines[0][:min(len(lines[0]), 80)])
				for _, e := range []string{rep.Error, got.Error} {
					if !strings.Contains(e, fmt.Sprintf("exit %d", exitConfig)) || !strings.Contains(e, quoted[:len(quoted)-1]) {
						t.Errorf("got error %q, want it to give the exit status and relay the receiver's %s", e, quoted)
					}
				}
			}
			if tt.sshdSays != "" {
				if err := s.Daemon.WaitLog(since, tt.sshdSays, sshTimeout); err != nil {
					t.Error(err)
				}
			}
			// Refused by sshd: no login at all.
			if log := sshdLog(t, s)[since:]; tt.wantClass == "auth" && strings.Contains(log, "Accepted publickey") {
				t.Errorf("sshd accepted a key:\n%s", log)
			}
			if after := readFile(t, log); after != before {
				t.Errorf("the log changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestFleetHostCertErrors: a pusher that trusts the fleet's host CA sends
// nothing to a peer whose host certificate is from another CA, out of its
// validity, or names another host (the name checked is the peer's
// HostKeyAlias, else its HostName), and every command that contacts peers
// says which; peers check with a hint. A peer whose host key is @revoked
// stays hostkey-changed.
func TestFleetHostCertErrors(t *testing.T) {
	sshdtest.Require(t)
	bin := banpushBin(t)
	dir := t.TempDir()
	stopProcsAtEnd(t)
	caDir := filepath.Join(dir, "ca")
	userCA, hostCA, otherCA := newKeyPair(t, caDir, "user_ca"), newKeyPair(t, caDir, "host_ca"), newKeyPair(t, caDir, "other_ca")

	peers := []struct {
		name, alias string        // the certificate must name alias, else 127.0.0.1
		ca          string        // signs its host certificate
		cert        sshdtest.Cert // ID, principals, validity
		wantClass   string
	}{
		{"good", "good", hostCA, sshdtest.Cert{ID: "good", Principals: []string{"good"}}, "ok"},
		{"byaddr", "", hostCA, sshdtest.Cert{ID: "byaddr", Principals: []string{"127.0.0.1"}}, "ok"},
		{"otherca", "otherca", otherCA, sshdtest.Cert{ID: "otherca", Principals: []string{"otherca"}}, "hostcert-unknown-ca"},
		{"expired", "expired", hostCA, sshdtest.Cert{ID: "expired", Principals: []string{"expired"}, Validity: "20200101:20200102"}, "hostcert-expired"},
		{"future", "future", hostCA, sshdtest.Cert{ID: "future", Principals: []string{"future"}, Validity: "+1d:+2d"}, "hostcert-expired"},
		{"wronghost", "wronghost", hostCA, sshdtest.Cert{ID: "good", Principals: []string{"good"}}, "hostcert-wrong-host"},
		{"byname", "", hostCA, sshdtest.Cert{ID: "byname", Principals: []string{"byname"}}, "hostcert-wrong-host"},
		{"revoked", "revoked", hostCA, sshdtest.Cert{ID: "revoked", Principals: []string{"revoked"}}, "hostkey-changed"},
	}
	admin := newPusher(t, filepath.Join(dir, "admin"), "")
	var logs []string
	var cfgs []sshdtest.Config
	for _, p := range peers {
		log, cfg := certReceiver(t, admin, filepath.Join(dir, p.name), userCA, bin)
		cfg.Extra = []string{"ExposeAuthInfo yes"}
		cfg.HostCertificate = hostCertSigner(p.ca, p.cert)
		logs = append(logs, log)
		cfgs = append(cfgs, cfg)
	}
	servers := sshdtest.StartMany(t, cfgs...)

	pdir := filepath.Join(dir, "pusher")
	key := newKeyPair(t, pdir, "id_ed25519")
	signCert(t, userCA, key, sshdtest.Cert{ID: "pusher", Principals: []string{"banpush"}})
	knownHosts := filepath.Join(pdir, "known_hosts")
	revoked := servers[len(servers)-1].HostKeys[0] // the last peer's
	writeFile(t, knownHosts, certAuthorityLine(t, hostCA)+"@revoked * "+string(ssh.MarshalAuthorizedKey(revoked)))
	var inv []invPeer
	for i, p := range peers {
		inv = append(inv, invPeer{p.name, p.alias, servers[i]})
	}
	c := newPusher(t, pdir, pusherInventory(t, key, knownHosts, inv...))
	since := make([]int, len(servers))
	for i, s := range servers {
		since[i] = len(s.Log())
	}

	// wantReports checks the class each command reported for each peer.
	wantReports := func(cmd string, got map[string]string) {
		t.Helper()
		for _, p := range peers {
			if got[p.name] != p.wantClass {
				t.Errorf("%s: %s: got %q, want %s", cmd, p.name, got[p.name], p.wantClass)
			}
		}
	}

	out, code, stderr := c.runCode("peers", "check", "--json", "--timeout", fleetTimeout.String())
	if code != exitPeers {
		t.Errorf("peers check: exit %d, want %d\nstderr:\n%s", code, exitPeers, stderr)
	}
	classes := map[string]string{}
	for _, r := range decodeJSON[[]checkReport](t, "peers check --json", out) {
		classes[r.Peer] = r.Result
		if r.Result != "ok" && r.Hint == "" {
			t.Errorf("peers check: %s: %s without a hint (%s)", r.Peer, r.Result, r.Error)
		}
		if r.Peer == "revoked" && !strings.Contains(r.Error, "revoked") {
			t.Errorf("peers check: revoked: error %q does not say the key is revoked", r.Error)
		}
	}
	wantReports("peers check", classes)

	addr := docAddrs(0x1130000, 1)[0]
	for _, args := range [][]string{
		{"push", "--wait", "--json", "--timeout", fleetTimeout.String(), addr},
		{"flush", "--json", "--timeout", fleetTimeout.String()},
	} {
		out, code, stderr := c.runCode(args...)
		if code != exitPeers {
			t.Errorf("%s: exit %d, want %d\nstderr:\n%s", args[0], code, exitPeers, stderr)
		}
		classes := map[string]string{}
		for _, r := range decodeJSON[[]peerReport](t, args[0]+" --json", out) {
			classes[r.Peer] = r.Result
			wantQueued := 1 // the ban stays queued for a peer that failed
			if r.Result == "ok" {
				wantQueued = 0
			}
			if r.Queued != wantQueued {
				t.Errorf("%s: %s: %s with %d queued, want %d", args[0], r.Peer, r.Result, r.Queued, wantQueued)
			}
			if hinted := r.Hint != ""; hinted != (r.Result != "ok") {
				t.Errorf("%s: %s: %s with hint %q, want a hint exactly when it failed", args[0], r.Peer, r.Result, r.Hint)
			}
			if strings.HasPrefix(r.Result, "hostcert-") && !strings.Contains(r.Hint, "ssh-keygen -s host_ca") && !strings.Contains(r.Hint, "@cert-authority") {
				t.Errorf("%s: %s: %s with hint %q, want it to say how to sign or trust", args[0], r.Peer, r.Result, r.Hint)
			}
		}
		wantReports(args[0], classes)
	}

	// status says it too, from the spool alone.
	var st status.Report
	out = c.run(nil, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	classes = map[string]string{}
	for _, p := range st.Peers {
		classes[p.Peer] = "ok"
		if p.LastFailureClass != "" {
			classes[p.Peer] = p.LastFailureClass
		}
	}
	wantReports("status", classes)

	// Nothing reached a peer it could not verify: no login, no log.
	for i, p := range peers {
		bans := readBans(t, logs[i])
		if p.wantClass == "ok" {
			if want := []banLine{{addr, "pusher"}}; !slices.Equal(bans, want) {
				t.Errorf("%s: log holds %v, want %v", p.name, bans, want)
			}
			continue
		}
		if len(bans) != 0 {
			t.Errorf("%s: log holds %v, want nothing", p.name, bans)
		}
		if log := servers[i].Log()[since[i]:]; strings.Contains(log, "Accepted publickey") || strings.Contains(log, "Failed publickey") {
			t.Errorf("%s: the pusher tried to log in to a host it could not verify:\n%s", p.name, log)
		}
	}
}

// TestFleetSelfByAddress: a host whose short hostname names no peer takes
// as itself the peer whose HostName is an address of one of its
// interfaces, and sends nothing to it. The host is a network namespace
// with that address (10.x, inside the namespace only) on a veth interface.
func TestFleetSelfByAddress(t *testing.T) {
	testenv.Need(t, testenv.Root("a network namespace"), testenv.Command("unshare", "util-linux"),
		testenv.Command("ip", "iproute2"), testenv.Command("hostname", "hostname"))
	bin := banpushBin(t)
	dir := t.TempDir()
	stopProcsAtEnd(t)
	inv := filepath.Join(dir, "peers")
	writeFile(t, inv, "Host web1\n  HostName 10.99.0.9\nHost web2\n  HostName 10.99.0.10\n  ConnectTimeout 2\n")
	spool := filepath.Join(dir, "spool")
	t.Cleanup(func() {
		if err := stopSpoolProcs(spool); err != nil {
			t.Error(err)
		}
	})
	// run runs banpush in a new network namespace where 10.99.0.9 is
	// on v0, and a new UTS namespace whose hostname is no peer's.
	run := func(args ...string) (string, int, string) {
		t.Helper()
		const setup = `ip link add v0 type veth peer name v1 && ip addr add 10.99.0.9/32 dev v0 && ip link set v0 up && hostname db7 && exec "$@"`
		ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", append([]string{"--net", "--uts", "--", "/bin/sh", "-c", setup, "sh", bin}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BANPUSH_INVENTORY=" + inv, "BANPUSH_SPOOL=" + spool}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
			return o.String(), ee.ExitCode(), e.String()
		}
		if err != nil {
			t.Fatalf("banpush %s: %v\n%s", strings.Join(args, " "), err, e.String())
		}
		return o.String(), 0, e.String()
	}

	out, code, stderr := run("peers", "list", "--json")
	if code != 0 {
		t.Fatalf("peers list: exit %d\n%s", code, stderr)
	}
	self := map[string]string{}
	for _, p := range decodeJSON[[]peerJSON](t, "peers list --json", out) {
		if p.Self {
			self[p.Name] = p.SelfReason
		}
	}
	if len(self) != 1 || !strings.Contains(self["web1"], "10.99.0.9") {
		t.Errorf("peers list --json: self %q, want web1, by its address 10.99.0.9", self)
	}

	// push --wait tries web2 and never web1. The namespace has no route
	// out (v1 is down), so web2 is unreachable and nothing leaves it.
	out, code, stderr = run("push", "--wait", "--json", "--timeout", "2s", docAddrs(0x1140000, 1)[0])
	var peers []string
	for _, r := range decodeJSON[[]peerReport](t, "push --wait --json\nstderr:\n"+stderr, out) {
		peers = append(peers, r.Peer)
	}
	if code != exitPeers || !slices.Equal(peers, []string{"web2"}) {
		t.Errorf("push --wait: exit %d, peers %v, want %d, [web2]\n%s", code, peers, exitPeers, stderr)
	}
	out, _, stderr = run("status", "--json")
	st := decodeJSON[status.Report](t, "status --json\nstderr:\n"+stderr, out)
	if len(st.Self) != 1 || st.Self[0].Name != "web1" || len(st.Peers) != 1 || st.Peers[0].Peer != "web2" || st.Peers[0].Queued != 1 {
		t.Errorf("status --json: self %+v, peers %+v, want web1 as self, web2 with one ban queued", st.Self, st.Peers)
	}
}
