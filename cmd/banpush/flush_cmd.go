package main

import (
	"time"

	"github.com/banpush/banpush/sshpush/spool"
)

// FlushCmd delivers the queue in the foreground.
type FlushCmd struct {
	DeliveryFlags
	Timeout time.Duration `help:"How long to keep trying unreachable peers." default:"50s"`
	JSON    bool          `name:"json" help:"Print the report as JSON."`
	Peers   []string      `arg:"" optional:"" name:"PEER" help:"Only these peers (default: all)."`
}

// Help explains flush and its use from a timer.
func (c *FlushCmd) Help() string {
	return `flush delivers everything queued to every peer (or those named), in the
foreground, and prints one line per peer: ok, or why not (unreachable,
timeout, auth, hostkey-unknown, hostkey-changed, hostcert-unknown-ca,
hostcert-expired, hostcert-wrong-host, not-banpush, rejected, busy,
receiver-cannot-write, receiver-too-old, receiver-error, config; 'banpush
peers check --help' says what to do about each). A background sender that
is lingering is asked to stop first. Exit status 0 when every peer
acknowledged its queue, 3 when any did not (its bans stay queued), 75 when
the sender lock was not had within --timeout (nothing was sent).

contrib/systemd/banpush-flush.timer runs it every minute, so that bans queued
while a peer was down, or while fail2ban was stopped, always go out.`
}

// Run delivers and reports.
func (c *FlushCmd) Run(env *Env, g *Globals) error {
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return withHint(err, exitFailure, "check --spool (BANPUSH_SPOOL)")
	}
	return deliverNow(env, g, s, deliverOpts{flags: c.DeliveryFlags, timeout: c.Timeout, json: c.JSON, peers: c.Peers})
}
