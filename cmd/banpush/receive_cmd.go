package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/wire"
)

// receiveLimits bound a peer's session (receive.SessionLimits); zero
// fields are the defaults. Tests shorten them.
var receiveLimits receive.SessionLimits

// ReceiveCmd is the receiving end, run by sshd as a forced command. Its
// arguments are the receiver's (receive.Args): read by receive.ParseArgs,
// the one parser of what 'banpush authorize' writes, not by kong.
type ReceiveCmd struct {
	Args []string `arg:"" optional:"" passthrough:"all" name:"FLAGS" help:"The receiver's flags, as 'banpush authorize' writes them (below)."`
}

// Help explains where receive runs and what it answers.
func (c *ReceiveCmd) Help() string {
	return fmt.Sprintf(`receive is not run by hand: sshd runs it as the forced command of a pushing
peer's key in authorized_keys (write that line with 'banpush authorize').

Its flags, in any order, each but --ignore at most once:
%s
The peer is named by --peer NAME in a line for one key, or, with
--peer-from-cert in a cert-authority line ('banpush authorize --cert-authority'),
after the key ID of the user certificate sshd verified, which it exposes in
the file SSH_USER_AUTH names (ExposeAuthInfo yes for the account). Without
exactly one certificate whose key ID is a valid peer name, nothing is read
and the exit status is 78.

The request comes from SSH_ORIGINAL_COMMAND:
  %-18s answers %q
                     once it has checked that it could write the log
  %-18s reads records from stdin, one a line:
                       IP [jail=NAME] [time=UNIXSECONDS] [bantime=SECONDS]
                     appends one log line per accepted address, fsyncs, then
                     answers %q
  %-18s the same for many batches on one session, each batch
                     followed by an empty line and answered in turn; ends at
                     the end of input or after 60 s of silence
  %-18s reads records as ban does; with --allow-unban, appends one
                     unban line ("banpush: unban ADDRESS peer=NAME ...") per
                     accepted address, for 'banpush apply-unbans' to apply;
                     without it, refuses each one and writes nothing

A record is refused (and reported on stderr by line number, never echoed) when
it does not parse, or names a loopback, unspecified, multicast, link-local,
broadcast, reserved, private or CGNAT address (private and CGNAT are allowed
with --allow-private), a special-purpose address that is not globally
reachable, a deprecated IPv4-compatible IPv6 address, an --ignore range, an
address of this host, the address the SSH connection comes from, or an
address in a from= option of this account's ~/.ssh/authorized_keys (the
fleet's own hosts); IPv6 outside 2000::/3 is reserved; NAT64, 6to4 and
Teredo addresses are checked as the IPv4 address they carry too. And when
the peer's token bucket is empty (--max-burst, --max-per-minute).

With --trust quorum, an accepted address is written as a report line
("banpush: report ADDRESS peer=NAME ...") instead of a ban line, at most one
per address per --quorum-window (remembered in LOG.quorum); the report that
makes --quorum distinct peers with a live report of the address adds a
quorum line ("banpush: quorum ADDRESS peer=NAME ... reports=N"), which the
banpush-quorum jail bans on.

For --unban-window (default 10m) after an address is unbanned here, bans of
it from this peer are refused as stale: after this peer's own unbans, and
after another peer's that had a ban here to lift (remembered in LOG.unbans
and LOG.history).

A peer is its name (--peer, or the certificate's key ID) in lower case up
to its first dot: one token bucket, one report toward a quorum and one
share of each memory, however many of its keys are authorized.

At most %d receivers of one peer run at once; a stream ends after 60 s of
silence or 10 minutes, whichever comes first.

Exit status: 0 batch handled; %d unknown request; %d batch refused whole
(over %d records or 1 MiB, or not sent within 30 s); %d the log or a file
beside it cannot be written (permissions, a full disk, a link or a
directory in its place), for a ping too: nothing written, a person must fix
it; %d log busy, too many sessions of the peer, or the log's directory
closed while root rotates the log: nothing written, try again; %d bad
arguments in authorized_keys.

Example (as sshd would run it):
  SSH_ORIGINAL_COMMAND='%s' banpush receive --peer web1 \
      --log /var/log/banpush/received.log < batch`,
		receiveFlagsHelp(), wire.Ping, wire.OK+" peer=NAME version=VERSION",
		wire.Ban, wire.OK+" accepted=N refused=M",
		wire.Stream, wire.Unban,
		receive.DefaultMaxSessions,
		exitRequest, exitData, wire.MaxRecords, exitCannotWrite, exitTemp, exitConfig, wire.Ban)
}

// receiveFlagsHelp lists the receiver's flags (receive.ArgFlags), each
// with its help wrapped to 78 columns.
func receiveFlagsHelp() string {
	var flags strings.Builder
	for _, f := range receive.ArgFlags {
		name := f.Name
		if f.Value != "" {
			name += " " + f.Value
		}
		fmt.Fprintf(&flags, "  %s\n", name)
		line := "     "
		for _, w := range strings.Fields(f.Help) {
			if len(line)+1+len(w) > 78 {
				flags.WriteString(line + "\n")
				line = "     "
			}
			line += " " + w
		}
		flags.WriteString(line + "\n")
	}
	return flags.String()
}

// Run handles one request.
func (c *ReceiveCmd) Run(env *Env) error {
	return receiveWith(env, append([]string{"receive"}, c.Args...))
}

// receiveWith handles one request with the forced command's arguments
// argv, from "receive" on.
func receiveWith(env *Env, argv []string) error {
	err := receive.Receiver{
		Argv: argv, Getenv: env.Getenv, Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr,
		Now: env.Now, Version: buildVersion(), LocalAddrs: roster.LocalAddrs, Limits: receiveLimits,
	}.Run(context.Background())
	var ee *receive.ExitError
	if errors.As(err, &ee) {
		return withHint(ee.Err, ee.Status, ee.Hint)
	}
	return err
}
