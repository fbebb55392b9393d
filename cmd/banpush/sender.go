package main

import (
	"os"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// How the commands run the sender (sshpush/sender): the background sender
// push, unban and sync start, and the foreground runs of flush and --wait.

// senderConfig is what every run of the sender shares: the spool, the log,
// and how to start a background sender.
func senderConfig(env *Env, g *Globals, d DeliveryFlags, s *spool.Spool, log *sender.Log) sender.Config {
	return sender.Config{
		Spool:   s,
		Options: sshpush.Options{Warn: func(m string) { log.Printf("warning: %s", m) }},
		MaxAge:  d.MaxAge,
		Kick:    senderCommand(g, d),
		Now:     env.Now,
		Logf:    log.Printf,
	}
}

// senderCommand starts a background sender: this binary, with the globals
// it was given (Globals.senderArgs).
func senderCommand(g *Globals, d DeliveryFlags) sender.Command {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	return sender.Command{Path: self, Args: g.senderArgs(d), Environ: os.Environ()}
}

// senderRoster is the sender's view of a roster.
func senderRoster(ro roster.Roster) sender.Roster {
	r := sender.Roster{Live: ro.Live}
	for _, p := range ro.Peers {
		r.Peers = append(r.Peers, deliver.Peer{Name: p.Name, Target: p.Target})
	}
	return r
}
