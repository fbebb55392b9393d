package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"golang.org/x/crypto/ssh"
)

// keyLine is an authorized_keys line of a fresh key with the given forced
// command.
func keyLine(t *testing.T, command string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return `restrict,command="` + strings.ReplaceAll(command, `"`, `\"`) + `" ` + string(ssh.MarshalAuthorizedKey(k))
}

func TestUnbanHoldFromKeys(t *testing.T) {
	const log = "/var/log/banpush/received.log"
	web1 := keyLine(t, "/usr/bin/banpush receive --peer web1 --log "+log+" --allow-unban")
	web2 := keyLine(t, "/usr/bin/banpush receive --peer web2 --log /var/log/banpush/./received.log --unban-window 30m")
	other := keyLine(t, "/usr/bin/banpush receive --peer web3 --log /var/log/other.log --unban-window 2h")
	kong := keyLine(t, "/usr/bin/banpush receive --log="+log+" --peer=web4 --unban-window=20m --max-burst=7")
	script := keyLine(t, "/usr/local/bin/backup --now")
	tests := []struct {
		name string
		keys string
		want time.Duration
	}{
		{"the largest window of the log's lines", web1 + web2 + other + script, 30 * time.Minute},
		{"the default window", "# comment\n" + web1 + other, 10 * time.Minute},
		{"a line kong reads", web1 + kong, 20 * time.Minute},
		{"no line of the log", other, 0},
		{"no file", "", 0},
		{"a receive line that does not parse", web2 + keyLine(t, "/usr/bin/banpush receive --peer web5 --log "+log+" --unban-window soon"), 0},
		{"a command whose words are not known", web2 + keyLine(t, "/usr/bin/banpush receive --peer $(id) --log "+log), 0},
	}
	for _, tt := range tests {
		if got := receive.UnbanHoldFromKeys([]byte(tt.keys), log); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestReceiveUnbanHold: the unban memory forgets an unban once no key of
// the log has a window that could still make a ban stale (here the
// default 10 minutes), not after the longest window allowed (a day): a
// peer that unbanned the memory's 20,000 entries can unban 20,000 more 11
// minutes later.
func TestReceiveUnbanHold(t *testing.T) {
	home := t.TempDir()
	log := filepath.Join(t.TempDir(), "received.log")
	args := []string{"--peer", "admin", "--log", log, "--allow-unban", "--max-burst", "100000"}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	keys := keyLine(t, "/usr/bin/banpush receive "+strings.Join(args, " ")) +
		keyLine(t, "/usr/bin/banpush receive --peer web2 --log "+log)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	unbans := func(from, n int) string {
		t.Helper()
		var in bytes.Buffer
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&in, "2001:db8::%x:%x\n", i>>16, i&0xffff)
		}
		var out, errb bytes.Buffer
		env := &Env{
			Stdin:  &in,
			Stdout: &out,
			Stderr: &errb,
			Getenv: func(k string) string {
				return map[string]string{"HOME": home, "SSH_ORIGINAL_COMMAND": "banpush-v1 unban", "SSH_CONNECTION": "198.51.100.99 40000 192.0.2.1 22"}[k]
			},
			Now: func() time.Time { return now },
		}
		if code := Main(append([]string{"receive"}, args...), env); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return out.String()
	}
	for i := 0; i < 20000; i += 10000 {
		if got := unbans(i, 10000); got != "banpush-v1 ok accepted=10000 refused=0\n" {
			t.Fatalf("first 20,000 unbans: %q", got)
		}
	}
	now = now.Add(11 * time.Minute)
	for i := 20000; i < 40000; i += 10000 {
		if got := unbans(i, 10000); got != "banpush-v1 ok accepted=10000 refused=0\n" {
			t.Fatalf("20,000 more unbans 11 minutes later: %q, want all accepted", got)
		}
	}
}

// TestUnbanReceiversFromKeys: apply-unbans weighs a private address with the
// policy of the receiver lines that write its log with --allow-unban: each
// line's peer (as the receiver names it: lower case, up to the first dot)
// or any peer for a cert-authority line, its --allow-private and --ignore.
// Lines of another log, lines without --allow-unban and lines whose
// arguments do not parse grant nothing.
func TestUnbanReceiversFromKeys(t *testing.T) {
	const log = "/var/log/banpush/received.log"
	keys := keyLine(t, "/usr/bin/banpush receive --peer Web1.example --log "+log+" --allow-unban --allow-private --ignore 10.0.0.0/24") +
		keyLine(t, "/usr/bin/banpush receive --peer db --log /var/log/banpush/./received.log --allow-unban") +
		keyLine(t, "/usr/bin/banpush receive --peer-from-cert --log "+log+" --allow-unban --allow-private") +
		keyLine(t, "/usr/bin/banpush receive --peer web3 --log /var/log/other.log --allow-unban --allow-private") +
		keyLine(t, "/usr/bin/banpush receive --peer web4 --log "+log+" --allow-private") +
		keyLine(t, "/usr/bin/banpush receive --peer web5 --log "+log+" --allow-unban --allow-private --unban-window soon") +
		keyLine(t, "/usr/local/bin/backup --now")
	got := unbanReceivers([]byte(keys), log)
	if len(got) != 3 {
		t.Fatalf("got %d receivers, want web1's, db's and the cert-authority line's: %+v", len(got), got)
	}
	web1, db, ca := got[0], got[1], got[2]
	if web1.Peer != "web1" || web1.AnyPeer || !web1.Policy.AllowPrivate || len(web1.Policy.Ignore) != 1 {
		t.Errorf("web1's line: got %+v", web1)
	}
	if db.Peer != "db" || db.Policy.AllowPrivate {
		t.Errorf("db's line: got %+v", db)
	}
	if !ca.AnyPeer || !ca.Policy.AllowPrivate {
		t.Errorf("the cert-authority line: got %+v", ca)
	}
}
