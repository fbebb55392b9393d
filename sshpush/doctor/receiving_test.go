package doctor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKey returns an authorized_keys key: "ssh-ed25519 AAAA...".
func testKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// parseStub reads the --log and --allow-unban of a receive line, as the
// command's parser would.
func parseStub(args []string) (Receiver, error) {
	var r Receiver
	for i, a := range args {
		switch {
		case a == "--log" && i+1 < len(args):
			r.Log = args[i+1]
		case a == "--allow-unban":
			r.Unban = true
		}
	}
	return r, nil
}

// TestAuthorizedKeysExpected (issue 26, item 5): a host the fleet's
// inventory names receives its peers' pushes. With no banpush line in the
// account's authorized_keys (the cert-authority line deleted), or no
// file, doctor must fail, not skip the host as one that does not receive.
func TestAuthorizedKeysExpected(t *testing.T) {
	const expected = "this host is h2 in the inventory /etc/banpush/peers (this host's short hostname), so its peers push to it"
	dir := t.TempDir()
	acct := Account{Name: "banpush", UID: os.Geteuid(), GID: os.Getegid(), Home: dir}
	noLine := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(noLine, []byte("# BEGIN banpush: lines managed by 'banpush authorize --install'\n# END banpush\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		expected string
		want     Status
	}{
		{name: "no banpush line, the inventory names this host", path: noLine, expected: expected, want: Fail},
		{name: "no file, the inventory names this host", path: filepath.Join(dir, "none"), expected: expected, want: Fail},
		{name: "no banpush line, a host that only pushes", path: noLine, want: Skip},
		{name: "no file, a host that only pushes", path: filepath.Join(dir, "none"), want: Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, recv := CheckAuthorizedKeys(Keys{Path: tt.path, Account: acct, Parse: parseStub, Expected: tt.expected})
			if len(rs) != 1 || rs[0].Status != tt.want || len(recv) != 0 {
				t.Fatalf("got %+v and receivers %+v, want one %s", rs, recv, tt.want)
			}
			if tt.want == Fail && (!strings.Contains(rs[0].Found, "h2 in the inventory") || !strings.Contains(rs[0].Hint, "setup-host.sh")) {
				t.Errorf("the failure does not say why this host must receive, or how to fix it: %+v", rs[0])
			}
		})
	}
}

// TestAuthorizedKeysFailingLine (issue 26, item 6): a line whose log the
// account cannot append to fails, and still configures a receiver: its
// jail, its log and its --allow-unban are checked, not skipped as if the
// host had no banpush line.
func TestAuthorizedKeysFailingLine(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "banpush")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "missing.log")
	ak := filepath.Join(dir, "authorized_keys")
	line := `restrict,command="` + bin + ` receive --peer-from-cert --log ` + log + ` --allow-unban" ` + testKey(t) + " banpush-ca=SHA256:x\n"
	if err := os.WriteFile(ak, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	acct := Account{Name: "banpush", UID: os.Geteuid(), GID: os.Getegid(), Home: dir}
	rs, recv := CheckAuthorizedKeys(Keys{Path: ak, Account: acct, Parse: parseStub})
	var line1 *Result
	for i := range rs {
		if rs[i].Check == "authorized-keys" && rs[i].Subject == "line 1" {
			line1 = &rs[i]
		}
	}
	if line1 == nil || line1.Status != Fail || !strings.Contains(line1.Found, "cannot append") {
		t.Fatalf("got %+v, want line 1 failed: the account cannot append to its log", rs)
	}
	if len(recv) != 1 || recv[0].Log != log || !recv[0].Unban {
		t.Fatalf("got receivers %+v, want the failed line's (log %s, --allow-unban)", recv, log)
	}
	if got := ReceivingJails(recv); !slices.Equal(got[JailFull], []string{log}) {
		t.Errorf("receiving jails: got %v, want %s watching %s", got, JailFull, log)
	}
	if r := CheckApplyUnbans(context.Background(), nil, false, slices.ContainsFunc(recv, func(r Receiver) bool { return r.Unban })); strings.Contains(r.Found, "no authorized_keys line") {
		t.Errorf("apply-unbans: %+v, want it checked for the --allow-unban line", r)
	}
}

// TestCheckSSHDRevokedKeys (issue 26, item 5): sshd refuses every key of
// the account while the RevokedKeys file it names is missing or damaged;
// doctor must fail then, and pass a KRL or a list of keys.
func TestCheckSSHDRevokedKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// An empty KRL as ssh-keygen -k writes it.
	krl := write("krl", "SSHKRL\n\x00"+"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	tests := []struct {
		name string
		krl  string // sshd -T's revokedkeys
		want Status
	}{
		{name: "none", krl: "none", want: OK},
		{name: "a KRL", krl: krl, want: OK},
		{name: "a list of keys", krl: write("keys", "# revoked\n"+testKey(t)+"\n"), want: OK},
		{name: "an empty list", krl: write("empty", ""), want: OK},
		{name: "missing", krl: filepath.Join(dir, "banpush_revoked.krl"), want: Fail},
		{name: "damaged", krl: write("damaged", "SSHKRX\nnot a krl\n"), want: Fail},
		{name: "a directory", krl: dir, want: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
				return []byte("disableforwarding yes\npermittty no\nexposeauthinfo yes\nrevokedkeys " + tt.krl + "\n"), nil
			}
			r := CheckSSHD(context.Background(), run, SSHD{Account: "banpush", AuthInfo: true})
			if r.Status != tt.want {
				t.Errorf("got %s (%s), want %s", r.Status, r.Found, tt.want)
			}
			if r.Status == Fail && (!strings.Contains(r.Found, "refuses every key") || !strings.Contains(r.Hint, "ssh-keygen -k")) {
				t.Errorf("the failure does not say what it costs or how to fix it: %+v", r)
			}
		})
	}
}
