package main

import (
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/banpush/banpush/sshpush/f2b"
)

// The commands that run once per ban (push under fail2ban's global action
// lock, send once per burst) are parsed with a grammar of their own
// command alone; receive reads its own arguments (receive.ParseArgs). kong builds the model of its grammar
// at every start, reflecting over every struct and interpolating every help
// text: for the whole CLI that was about 2 ms, more than a push's own work.
// A one-command grammar holds the same Globals and the same command struct
// under the same name, so whatever it parses, the whole CLI parses to the
// same values (TestQuickGrammars); anything else (--help, a usage error,
// another command) falls through to the whole CLI, which then prints
// exactly what it always did. Even a one-command model cost push more than
// its own work, so the arguments fail2ban's action gives it are read
// without kong (fastPush), with kong's rules.

type pushGrammar struct {
	Globals
	Push PushCmd `cmd:""`
}

type sendGrammar struct {
	Globals
	Send SendCmd `cmd:""`
}

// quickGrammar returns the one-command grammar args may be for, and its
// globals, or nil.
func quickGrammar(args []string) (grammar any, g *Globals) {
	switch {
	case slices.Contains(args, "push"):
		var q pushGrammar
		return &q, &q.Globals
	case slices.Contains(args, "send"):
		var q sendGrammar
		return &q, &q.Globals
	}
	return nil, nil
}

// quickParse parses args with the one-command grammar they may be for,
// silently. ok is false when there is none or it does not parse them.
func quickParse(args []string, env *Env) (kctx *kong.Context, g *Globals, ok bool) {
	grammar, g := quickGrammar(args)
	if grammar == nil {
		return nil, nil, false
	}
	quiet := *env
	quiet.Stdout, quiet.Stderr = io.Discard, io.Discard
	defer func() {
		if r := recover(); r != nil {
			if _, exit := r.(exitPanic); !exit {
				panic(r)
			}
			kctx, g, ok = nil, nil, false
		}
	}()
	kctx, err := grammarParser(grammar, &quiet).Parse(args)
	if err != nil {
		return nil, nil, false
	}
	return kctx, g, true
}

// runQuick runs args through their one-command grammar, if they parse
// with it. ok is false when the whole CLI must parse them instead.
func runQuick(args []string, env *Env) (code int, ok bool) {
	if g, c, ok := fastPush(args, os.LookupEnv); ok {
		return report(env.Stderr, c.Run(env, &g)), true
	}
	// receive's arguments are the receiver's (receive.ParseArgs), which
	// kong does not read: sshd runs it for every session of every peer,
	// and building kong's model was a third of its CPU time. Only --help
	// goes through kong.
	if len(args) > 0 && args[0] == "receive" && !slices.Contains(args, "--help") && !slices.Contains(args, "-h") {
		return report(env.Stderr, receiveWith(env, args)), true
	}
	kctx, g, ok := quickParse(args, env)
	if !ok {
		return 0, false
	}
	return report(env.Stderr, kctx.Run(env, g)), true
}

// fastPush reads the arguments of push in the form fail2ban's action gives
// them,
//
//	push [--jail V] [--time V] [--bantime V] [--max-age D] [--allow-private] [--] IP...
//
// (each flag at most once, a value as the next argument or after "="),
// without kong, and the environment with kong's rules for the same flags.
// ok is false for anything else (another flag, a global before push, a
// value that starts with "-", an empty or "-" path in the environment, a
// duration that does not parse): kong parses those. TestFastPush holds it
// to what kong makes of the same arguments and environment.
func fastPush(args []string, lookupEnv func(string) (string, bool)) (g Globals, c PushCmd, ok bool) {
	if len(args) < 2 || args[0] != "push" {
		return g, c, false
	}
	if g, ok = envGlobals(lookupEnv); !ok {
		return g, c, false
	}
	maxAge, set := lookupEnv("BANPUSH_MAX_AGE")
	if !set {
		maxAge = "24h"
	} else if _, err := time.ParseDuration(maxAge); err != nil {
		return g, c, false // kong refuses it, whatever the flags say
	}
	c.Timeout = 30 * time.Second
	values := map[string]*string{"--jail": &c.Jail, "--time": &c.Time, "--bantime": &c.BanTime, "--max-age": &maxAge}
	seen := map[string]bool{}
	rest := args[1:]
	for len(rest) > 0 {
		a := rest[0]
		rest = rest[1:]
		switch {
		case a == "--":
			c.IPs = append(c.IPs, rest...)
			rest = nil
		case a == "--allow-private" && !seen[a]:
			c.AllowPrivate, seen[a] = true, true
		case strings.HasPrefix(a, "-"):
			name, v, inline := strings.Cut(a, "=")
			p := values[name]
			if p == nil || seen[name] {
				return g, c, false
			}
			if !inline {
				if len(rest) == 0 {
					return g, c, false
				}
				v, rest = rest[0], rest[1:]
			}
			if strings.HasPrefix(v, "-") {
				return g, c, false
			}
			*p, seen[name] = v, true
		default:
			c.IPs = append(c.IPs, a)
		}
	}
	d, err := time.ParseDuration(maxAge)
	if err != nil || len(c.IPs) == 0 {
		return g, c, false
	}
	c.MaxAge = d
	return g, c, true
}

// envGlobals reads the globals from their environment variables and
// defaults, as kong does when no global flag is given; ok is false where
// kong would do something else than expand the paths.
func envGlobals(lookupEnv func(string) (string, bool)) (g Globals, ok bool) {
	if g.Inventory, ok = envPath(lookupEnv, "BANPUSH_INVENTORY", "/etc/banpush/peers"); !ok {
		return g, false
	}
	if g.Spool, ok = envPath(lookupEnv, "BANPUSH_SPOOL", "/var/spool/banpush"); !ok {
		return g, false
	}
	if g.Fail2banSocket, ok = envPath(lookupEnv, "BANPUSH_FAIL2BAN_SOCKET", f2b.DefaultSocket); !ok {
		return g, false
	}
	g.Self, _ = lookupEnv("BANPUSH_SELF")
	return g, true
}

// envPath is a path flag's value as kong makes it from its environment
// variable or its default, which must be absolute; ok is false where kong
// would do something else than expand the path.
func envPath(lookupEnv func(string) (string, bool), name, def string) (string, bool) {
	v, ok := lookupEnv(name)
	if !ok {
		return def, true
	}
	if v == "" || v == "-" {
		return "", false
	}
	return kong.ExpandPath(v), true
}
