package main

import (
	"bytes"
	"os"
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
		{"receive, which reads its own arguments", []string{"receive", "--peer", "web1", "--log", "/var/log/banpush/received.log"}, false},
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

// TestFastPush: what fastPush reads, kong reads the same way from the same
// arguments and environment; the action's own form is read without kong.
func TestFastPush(t *testing.T) {
	envs := []struct {
		name string
		env  map[string]string
	}{
		{"no environment", nil},
		{"paths and flags from the environment", map[string]string{"BANPUSH_INVENTORY": "rel/peers", "BANPUSH_SPOOL": "/s/spool",
			"BANPUSH_SELF": "web1", "BANPUSH_MAX_AGE": "90m", "BANPUSH_FAIL2BAN_SOCKET": "~/f2b.sock"}},
		{"empty path", map[string]string{"BANPUSH_SPOOL": ""}},
		{"bad duration", map[string]string{"BANPUSH_MAX_AGE": "soon"}},
		{"empty self", map[string]string{"BANPUSH_SELF": ""}},
	}
	tests := []struct {
		name string
		args []string
		fast bool // read without kong, given an environment it reads
	}{
		{"the action's form", []string{"push", "--jail", "sshd", "--time", "1700000000.25", "--bantime", "600", "--", "203.0.113.7"}, true},
		{"values after =", []string{"push", "--jail=sshd", "--time=", "--bantime=600", "--max-age=1h", "--allow-private", "10.0.0.1", "2001:db8::1"}, true},
		{"an address alone", []string{"push", "203.0.113.7"}, true},
		{"flags after the address", []string{"push", "203.0.113.7", "--jail", "sshd"}, true},
		{"after --, anything is an address", []string{"push", "--", "--jail", "-1"}, true},
		{"no address", []string{"push", "--jail", "sshd"}, false},
		{"a value that starts with -", []string{"push", "--bantime", "-1", "203.0.113.7"}, false},
		{"a flag given twice", []string{"push", "--jail", "a", "--jail", "b", "203.0.113.7"}, false},
		{"--wait", []string{"push", "--wait", "203.0.113.7"}, false},
		{"a global first", []string{"--spool", "/s", "push", "203.0.113.7"}, false},
		{"a missing value", []string{"push", "203.0.113.7", "--time"}, false},
		{"--help", []string{"push", "--help"}, false},
	}
	for _, e := range envs {
		for _, tt := range tests {
			t.Run(e.name+"/"+tt.name, func(t *testing.T) {
				unsetBanpushEnv(t)
				for k, v := range e.env {
					t.Setenv(k, v)
				}
				g, c, ok := fastPush(tt.args, os.LookupEnv)
				wantFast := tt.fast && e.name != "empty path" && e.name != "bad duration"
				if ok != wantFast {
					t.Fatalf("fastPush reads %q: %v, want %v", tt.args, ok, wantFast)
				}
				if !ok {
					return
				}
				q := kongParse(t, tt.args).(*pushGrammar)
				if g != q.Globals {
					t.Errorf("globals: fastPush %+v, kong %+v", g, q.Globals)
				}
				if !reflect.DeepEqual(c, q.Push) {
					t.Errorf("push: fastPush %+v, kong %+v", c, q.Push)
				}
			})
		}
	}
}

// unsetBanpushEnv unsets every BANPUSH_ variable for the test.
func unsetBanpushEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"BANPUSH_INVENTORY", "BANPUSH_SPOOL", "BANPUSH_SELF", "BANPUSH_MAX_AGE", "BANPUSH_FAIL2BAN_SOCKET"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// kongParse parses args with their one-command grammar, through kong, in
// the process's environment, and returns the grammar's struct; the test
// fails if kong does not parse them.
func kongParse(t *testing.T, args []string) any {
	t.Helper()
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Getenv: os.Getenv, Now: time.Now}
	kctx, _, ok := quickParse(args, env)
	if !ok {
		t.Fatalf("kong does not parse %q (the fast path does)", args)
	}
	return kctx.Model.Target.Addr().Interface()
}
