package main

import (
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/receive"
)

// The commands that run once per ban (push under fail2ban's global action
// lock, receive on every peer, send once per burst) are parsed with a
// grammar of their own command alone. kong builds the model of its grammar
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

type receiveGrammar struct {
	Globals
	Receive ReceiveCmd `cmd:""`
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
	case slices.Contains(args, "receive"):
		var q receiveGrammar
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
	if c, ok := fastReceive(args, os.LookupEnv); ok {
		return report(env.Stderr, c.Run(env)), true
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

// fastReceive reads the arguments of receive in the form authorize writes
// them into authorized_keys (ReceiveArgs.argv),
//
//	receive (--peer V | --peer-from-cert) --log V [--ignore V]... [--max-burst N]
//	        [--max-per-minute N] [--allow-private] [--trust V] [--quorum N]
//	        [--quorum-window D] [--allow-unban] [--unban-window D]
//
// in any order, each flag but --ignore at most once, a value as the next
// argument or after "=", without kong: sshd runs it for every session of
// every peer, and building kong's model was a third of its CPU time and
// most of its memory. ok is false for anything else (another flag, a global,
// a value that is empty or starts with "-", a number that is not plain
// decimal, an --ignore value with a backslash or an empty item, a bad --trust or duration, no
// --log, an environment envGlobals refuses): kong parses those, and
// reports what is wrong. TestFastReceive holds it to kong.
func fastReceive(args []string, lookupEnv func(string) (string, bool)) (c ReceiveCmd, ok bool) {
	if len(args) < 2 || args[0] != "receive" {
		return c, false
	}
	if _, ok := envGlobals(lookupEnv); !ok {
		return c, false
	}
	a := &c.ReceiveArgs
	a.MaxBurst, a.MaxPerMinute = receive.DefaultMaxBurst, receive.DefaultMaxPerMinute
	a.Trust, a.Quorum, a.QuorumWindow = "full", receive.DefaultQuorumPeers, receive.DefaultQuorumWindow
	a.UnbanWindow = receive.DefaultUnbanWindow
	flags := map[string]bool{"--peer-from-cert": true, "--allow-private": true, "--allow-unban": true}
	seen := map[string]bool{}
	for rest := args[1:]; len(rest) > 0; {
		name, v, inline := strings.Cut(rest[0], "=")
		rest = rest[1:]
		if seen[name] && name != "--ignore" {
			return c, false
		}
		seen[name] = true
		if flags[name] {
			if inline {
				return c, false
			}
		} else {
			if !inline {
				if len(rest) == 0 {
					return c, false
				}
				v, rest = rest[0], rest[1:]
			}
			if v == "" || strings.HasPrefix(v, "-") {
				return c, false
			}
		}
		ok = true
		var err error
		switch name {
		case "--peer":
			a.Peer = v
		case "--peer-from-cert":
			a.PeerFromCert = true
		case "--log":
			a.Log = v
		case "--ignore":
			if strings.Contains(v, `\`) {
				return c, false
			}
			for _, p := range strings.Split(v, ",") {
				if p == "" {
					return c, false
				}
				a.Ignore = append(a.Ignore, p)
			}
		case "--max-burst":
			a.MaxBurst, ok = plainDecimal(v)
		case "--max-per-minute":
			a.MaxPerMinute, ok = plainDecimal(v)
		case "--quorum":
			a.Quorum, ok = plainDecimal(v)
		case "--allow-private":
			a.AllowPrivate = true
		case "--allow-unban":
			a.AllowUnban = true
		case "--trust":
			a.Trust, ok = v, v == "full" || v == trustQuorum
		case "--quorum-window":
			a.QuorumWindow, err = time.ParseDuration(v)
		case "--unban-window":
			a.UnbanWindow, err = time.ParseDuration(v)
		default:
			return c, false
		}
		if !ok || err != nil {
			return c, false
		}
	}
	return c, a.Log != ""
}

// plainDecimal parses a non-negative decimal number without a sign or
// leading zeros, which every integer parser reads the same way.
func plainDecimal(s string) (int, bool) {
	if s == "" || len(s) > 9 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
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
