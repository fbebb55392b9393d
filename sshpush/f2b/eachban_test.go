package f2b

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClient is a Client whose fail2ban-client is the shell script body,
// run with the arguments after "-s SOCKET".
func fakeClient(t *testing.T, body string) *Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fail2ban-client")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nshift 2\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Client{Path: path, Socket: "/nonexistent/fail2ban.sock"}
}

// TestEachBan: the list is read as it comes, with no bound on its length;
// a line of another shape, fn's error, a jail that does not exist and a
// server that does not answer each stop it with their own error.
func TestEachBan(t *testing.T) {
	line := "203.0.113.7 \t2026-11-30 09:00:11 + 60 = 2026-11-30 09:01:11"
	many := `i=0; while [ $i -lt 1000 ]; do echo "` + line + `"; i=$((i+1)); done`
	n := 0
	count := func(Ban) error { n++; return nil }
	if err := fakeClient(t, many).EachBan(context.Background(), "sshd", count); err != nil || n != 1000 {
		t.Fatalf("1000 bans: %d read, %v", n, err)
	}
	if _, err := ScanBans(strings.NewReader(strings.Repeat(line+"\n", maxBans+1)), "sshd", time.UTC, func(Ban) error { return nil }); err != nil {
		t.Errorf("ScanBans of %d bans: %v, want no bound", maxBans+1, err)
	}

	stop := errors.New("stop")
	tests := []struct {
		name string
		body string
		fn   func(Ban) error
		want string
		is   error
	}{
		{"a line of another shape", `echo "` + line + `"; echo "oops"`, count, "line 2: no ' \\t' after the banned ID", nil},
		{"a line too long", `echo "` + line + `"; head -c 100000 /dev/zero | tr '\0' x; echo`, count, "line 2: line too long", nil},
		{"fn stops it", many, func(Ban) error { return stop }, "", stop},
		{"no such jail", `echo "Sorry but the jail 'sshd' does not exist"; exit 255`, count, "", ErrNoJail},
		{"no server", `echo "ERROR  Failed to access socket path: /x. Is fail2ban running?" >&2; exit 255`, count, "", ErrNotRunning},
	}
	for _, tt := range tests {
		err := fakeClient(t, tt.body).EachBan(context.Background(), "sshd", tt.fn)
		switch {
		case tt.is != nil && !errors.Is(err, tt.is):
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.is)
		case tt.is == nil && (err == nil || !strings.HasSuffix(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error ending %q", tt.name, err, tt.want)
		}
	}
	if err := fakeClient(t, "exit 0").EachBan(context.Background(), "-bad jail", count); err == nil {
		t.Error("a bad jail name reached fail2ban-client")
	}
}

// TestPushActions: the push actions of the running jails, with their
// actionban as the server has it (the action's arguments in place): the
// one named banpush, and another whose actionban runs 'banpush push'; not
// a firewall action, nor one whose actionban cannot be read.
func TestPushActions(t *testing.T) {
	c := fakeClient(t, `case "$*" in
status) printf 'Status\n|- Number of jail:\t2\n`+"`"+`- Jail list:\tsshd, recidive\n' ;;
"get sshd actions") printf 'The jail sshd has the following actions:\niptables, banpush\n' ;;
"get recidive actions") printf 'The jail recidive has the following actions:\npy, share\n' ;;
"get sshd action iptables actionban") echo '<iptables> -I f2b-<name> 1 -s <ip> -j <blocktype>' ;;
"get sshd action banpush actionban") echo '/usr/local/bin/banpush push --allow-private --jail "sshd" -- "<ip>"' ;;
"get recidive action py actionban") echo "ERROR  NOK: ('actionban',)" >&2; exit 255 ;;
"get recidive action share actionban") echo '/usr/bin/banpush push --jail "recidive" -- "<ip>"' ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac`)
	got, err := c.PushActions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []PushAction{
		{Jail: "sshd", Action: Action{Name: "banpush", Ban: `/usr/local/bin/banpush push --allow-private --jail "sshd" -- "<ip>"`}},
		{Jail: "recidive", Action: Action{Name: "share", Ban: `/usr/bin/banpush push --jail "recidive" -- "<ip>"`}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("action %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := fakeClient(t, `echo "ERROR  Failed to access socket path: /x. Is fail2ban running?" >&2; exit 255`).PushActions(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no server: got %v, want ErrNotRunning", err)
	}
}
