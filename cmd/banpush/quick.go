package main

import (
	"io"
	"slices"

	"github.com/alecthomas/kong"
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
// exactly what it always did.

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
	kctx, g, ok := quickParse(args, env)
	if !ok {
		return 0, false
	}
	return report(env.Stderr, kctx.Run(env, g)), true
}
