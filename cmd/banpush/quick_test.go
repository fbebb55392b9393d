package main

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// TestQuickGrammars: what a one-command grammar parses, the whole CLI
// parses to the same globals, the same command and the same flags; what
// it refuses (help, usage errors, other commands) is left to the whole
// CLI.
func TestQuickGrammars(t *testing.T) {
	t.Setenv("BANPUSH_MAX_AGE", "2h")
	t.Setenv("BANPUSH_SELF", "web9")
	tests := []struct {
		name  string
		args  []string
		quick bool // the one-command grammar parses them
	}{
		{"push as fail2ban runs it", []string{"push", "--jail", "sshd", "--time", "1700000000.5", "--bantime", "600", "--", "203.0.113.7"}, true},
		{"push with globals first", []string{"--spool", "rel/spool", "--inventory", "~/peers", "--self", "web1", "push", "--allow-private", "10.0.0.1", "2001:db8::1"}, true},
		{"push --wait", []string{"push", "--wait", "--timeout", "5s", "--json", "--max-age=1h", "203.0.113.7"}, true},
		{"push of a word that names a command", []string{"push", "receive", "send"}, true},
		{"push --help", []string{"push", "--help"}, false},
		{"push with an unknown flag", []string{"push", "--bogus", "203.0.113.7"}, false},
		{"push without an address", []string{"push"}, false},
		{"another command naming push", []string{"peers", "add", "push", "--host", "h"}, false},
		{"receive as authorize writes it", []string{"receive", "--peer", "web1", "--log", "/var/log/banpush/received.log", "--ignore", "198.51.100.0/24", "--max-burst", "7"}, true},
		{"receive with quorum", []string{"receive", "--peer-from-cert", "--log", "/l", "--trust", "quorum", "--quorum-window", "2h"}, true},
		{"receive without --log", []string{"receive", "--peer", "web1"}, false},
		{"receive with a bad --trust", []string{"receive", "--peer", "web1", "--log", "/l", "--trust", "some"}, false},
		{"send as push starts it", (&Globals{Inventory: "/etc/banpush/peers", Spool: "/var/spool/banpush", Self: "web1"}).senderArgs(DeliveryFlags{MaxAge: time.Hour}), true},
		{"send with its own flags", []string{"send", "--linger", "1s", "--max-run", "1m", "--concurrency", "4"}, true},
		{"status", []string{"status"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }, Now: time.Now}
			kctx, _, ok := quickParse(tt.args, env)
			if ok != tt.quick {
				t.Fatalf("quick grammar parses %q: %v, want %v", tt.args, ok, tt.quick)
			}
			if out.Len() > 0 {
				t.Errorf("quick grammar printed %q", out.String())
			}
			if !ok {
				return
			}
			cli, cmd := parseArgs(t, tt.args)
			if kctx.Command() != cmd {
				t.Errorf("quick grammar selects %q, the CLI %q", kctx.Command(), cmd)
			}
			q := kctx.Model.Target
			if g := q.Field(0).Interface().(Globals); g != cli.Globals {
				t.Errorf("globals: quick %+v, CLI %+v", g, cli.Globals)
			}
			name := q.Type().Field(1).Name
			got, want := q.Field(1).Interface(), reflect.ValueOf(cli).Elem().FieldByName(name).Interface()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: quick %+v, CLI %+v", name, got, want)
			}
		})
	}
}
