package main

import (
	"context"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/f2b"
)

// push learns its policy from the arguments fail2ban's action gives it
// (contrib/fail2ban/action.d/banpush.conf: banpush[pushargs="--allow-private"]).
// unban, run by hand, reads the same arguments out of the running jails'
// push actions, so that it refuses what push refuses and no more.

// pushPolicy is what the push actions of the running fail2ban say about
// private addresses.
type pushPolicy struct {
	Private map[string]bool // the jails whose push action allows them
	Actions int             // the push actions read
}

// allowPrivate reports whether any push action allows private addresses,
// and the first such jail by name.
func (p pushPolicy) allowPrivate() (jail string, ok bool) {
	if len(p.Private) == 0 {
		return "", false
	}
	return slices.Sorted(maps.Keys(p.Private))[0], true
}

// runningPushPolicy asks the running fail2ban for its push actions and
// reads the arguments each gives push.
func runningPushPolicy(ctx context.Context, client *f2b.Client) (pushPolicy, error) {
	acts, err := client.PushActions(ctx)
	if err != nil {
		return pushPolicy{}, err
	}
	p := pushPolicy{Private: map[string]bool{}, Actions: len(acts)}
	for _, a := range acts {
		if c, ok := parsePushArgs(a.Ban); ok && c.AllowPrivate {
			p.Private[a.Jail] = true
		}
	}
	return p, nil
}

// parsePushArgs reads the arguments of 'banpush push' in an actionban, as
// push would parse them. ok is false when the command is not banpush's
// push or its arguments do not parse.
func parsePushArgs(actionban string) (c PushCmd, ok bool) {
	argv, err := authkeys.SplitCommand(actionban)
	if err != nil {
		argv = strings.Fields(actionban) // a tag outside quotes: <ip>
	}
	if len(argv) < 2 || filepath.Base(argv[0]) != "banpush" || argv[1] != "push" {
		return c, false
	}
	// The action's usual form is the one fail2ban runs push with: read
	// as push reads it then, without building kong's whole grammar.
	if _, pc, ok := fastPush(argv[1:], func(string) (string, bool) { return "", false }); ok {
		return pc, true
	}
	var cli CLI
	quiet := &Env{Stdout: io.Discard, Stderr: io.Discard}
	defer func() {
		if r := recover(); r != nil {
			if _, exit := r.(exitPanic); !exit {
				panic(r)
			}
			ok = false
		}
	}()
	kctx, err := newParser(&cli, quiet).Parse(argv[1:])
	if err != nil || !strings.HasPrefix(kctx.Command(), "push") {
		return c, false
	}
	return cli.Push, true
}
