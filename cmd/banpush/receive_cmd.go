package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/sys/unix"
)

// batchReadTimeout bounds how long a peer may take to send its batch; a
// variable so that tests can shorten it.
var batchReadTimeout = 30 * time.Second

// maxRefusalsShown caps the refusal lines sent back to the peer per batch.
const maxRefusalsShown = 100

// A stream ends when its sender is silent for streamIdleTimeout, after
// maxStreamBatches batches, or streamLifetime after it started, whatever
// the sender does; the sender then opens another.
var (
	streamIdleTimeout = 60 * time.Second
	streamLifetime    = 10 * time.Minute
)

const maxStreamBatches = 100000

// ReceiveCmd is the receiving end, run by sshd as a forced command. Its
// arguments are the receiver's (receive.Args): read by receive.ParseArgs,
// the one parser of what 'banpush authorize' writes, not by kong.
type ReceiveCmd struct {
	Args []string `arg:"" optional:"" passthrough:"all" name:"FLAGS" help:"The receiver's flags, as 'banpush authorize' writes them (below)."`
}

// Help explains where receive runs and what it answers.
func (c *ReceiveCmd) Help() string {
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
it; %d log busy, or too many sessions of the peer: nothing written, try
again; %d bad arguments in authorized_keys.

Example (as sshd would run it):
  SSH_ORIGINAL_COMMAND='%s' banpush receive --peer web1 \
      --log /var/log/banpush/received.log < batch`,
		flags.String(), wire.Ping, wire.OK+" peer=NAME version=VERSION",
		wire.Ban, wire.OK+" accepted=N refused=M",
		wire.Stream, wire.Unban,
		receive.DefaultMaxSessions,
		exitRequest, exitData, wire.MaxRecords, exitCannotWrite, exitTemp, exitConfig, wire.Ban)
}

// Run handles one request.
func (c *ReceiveCmd) Run(env *Env) error {
	return receiveWith(env, append([]string{"receive"}, c.Args...))
}

// receiveWith handles one request with the forced command's arguments
// argv, from "receive" on.
func receiveWith(env *Env, argv []string) error {
	a, err := receive.ParseArgs(argv)
	var cfg receive.Config
	if err == nil {
		_, cfg, err = a.Check(env.Now)
	}
	if err != nil {
		// The argv comes from authorized_keys: this is the local admin's
		// mistake, and the peer only learns that the receiver is misconfigured.
		return errorf(exitConfig, "fix the command= option in authorized_keys ('banpush authorize' writes it)", "%v", err)
	}
	if a.PeerFromCert {
		if cfg.Peer, err = certPeer(env); err != nil {
			return err
		}
	}
	req, err := wire.ParseRequest(env.Getenv("SSH_ORIGINAL_COMMAND"))
	if err != nil {
		return errorf(exitRequest, "", "%v", err)
	}
	if req == wire.Ping {
		// A ping tests what a batch would need: a receiver that cannot
		// write its log says so now, not at the next ban.
		if err := receive.Writable(cfg.LogPath); err != nil {
			return receiveError(err)
		}
		line, err := wire.PingAnswer{Peer: cfg.Peer, Version: buildVersion()}.Marshal()
		if err == nil {
			_, err = env.Stdout.Write(append(line, '\n'))
		}
		return err
	}

	// At most a few receivers per peer at once: a peer that holds sessions
	// open gets no more memory and processes here than that.
	sess, err := receive.AcquireSession(cfg.LogPath, cfg.Peer, receive.DefaultMaxSessions)
	if err != nil {
		return receiveError(err)
	}
	defer sess.Release()
	cfg.Policy.Local = localAddrs()
	cfg.Policy.Remote = remoteAddr(env.Getenv("SSH_CONNECTION"))
	// The addresses in the from= options of authorized_keys are the
	// fleet's pushers, which no peer may ban here.
	keys := authorizedKeys(env)
	cfg.Policy.Peers = authkeys.FromPrefixes(keys)
	if req == wire.Unban {
		cfg.UnbanHold = receive.UnbanHoldFromKeys(keys, cfg.LogPath)
	}
	if req == wire.Stream {
		w := bufio.NewWriter(env.Stdout)
		err := receive.Serve(context.Background(), cfg, idleReader(env.Stdin, streamIdleTimeout, time.Now().Add(streamLifetime)), w, env.Stderr,
			receive.StreamLimits{MaxBatches: maxStreamBatches, MaxShown: maxRefusalsShown})
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil // a silent sender: every batch so far is answered
		}
		return receiveError(err)
	}
	handle := receive.Accept
	if req == wire.Unban {
		handle = receive.Unban
	}
	res, err := handle(context.Background(), cfg, deadlineReader(env.Stdin, batchReadTimeout))
	if err != nil {
		return receiveError(err)
	}
	return receive.WriteAnswer(env.Stdout, env.Stderr, res, maxRefusalsShown)
}

// certPeer names the pushing peer after the user certificate sshd verified
// for the session (--peer-from-cert): its key ID, from the file sshd names
// in SSH_USER_AUTH. Anything short of exactly that is the receiving host's
// setup to fix, and the peer is refused before a byte of it is read.
func certPeer(env *Env) (string, error) {
	data, err := receive.ReadAuthInfo(env.Getenv("SSH_USER_AUTH"))
	if err == nil {
		var name string
		if name, err = receive.PeerFromAuthInfo(data, env.Now()); err == nil {
			return name, nil
		}
	}
	var ae *receive.AuthInfoError
	if errors.As(err, &ae) {
		return "", errorf(exitConfig, ae.Hint, "%v: nothing read, nothing written", err)
	}
	return "", errorf(exitConfig, "", "%v", err)
}

// receiveError maps what the receiver returned to an exit status.
func receiveError(err error) error {
	var temp *receive.TempError
	var unwritable *receive.WriteError
	switch {
	case errors.Is(err, wire.ErrBatchTooLarge), errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(exitData, "", "%v", err)
	case errors.Is(err, receive.ErrTooManySessions):
		return errorf(exitTemp, "", "%v (at most %d): nothing read, try again later", err, receive.DefaultMaxSessions)
	case errors.As(err, &unwritable):
		return errorf(exitCannotWrite, "", "%v", err)
	case errors.As(err, &temp):
		return errorf(exitTemp, "", "%v", err)
	case err != nil:
		return errorf(exitData, "", "%v", err)
	}
	return nil
}

// deadlineReader bounds how long reading stdin may take in all, so that a
// peer that never closes its end cannot hold a receiver (and its lock wait)
// forever.
func deadlineReader(r io.Reader, d time.Duration) io.Reader {
	f := pollable(r)
	if f == nil || f.SetReadDeadline(time.Now().Add(d)) != nil {
		return r
	}
	return f
}

// idleReader bounds how long each read of stdin may wait, and when the
// last may end: a stream may last long, but not in silence, and not
// forever.
func idleReader(r io.Reader, d time.Duration, until time.Time) io.Reader {
	f := pollable(r)
	if f == nil || f.SetReadDeadline(earliest(time.Now().Add(d), until)) != nil {
		return r
	}
	return &idleFile{f: f, d: d, until: until}
}

type idleFile struct {
	f     *os.File
	d     time.Duration
	until time.Time
}

func (i *idleFile) Read(p []byte) (int, error) {
	if err := i.f.SetReadDeadline(earliest(time.Now().Add(i.d), i.until)); err != nil {
		return 0, err
	}
	return i.f.Read(p)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// pollable returns stdin as a file that takes deadlines, or nil. Under sshd
// stdin is a blocking pipe or socket, which Go cannot put a deadline on: a
// duplicate of it in non-blocking mode can.
func pollable(r io.Reader) *os.File {
	f, ok := r.(*os.File)
	if !ok {
		return nil
	}
	if f.SetReadDeadline(time.Time{}) == nil {
		return f
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), f.Name())
}

// localAddrs lists this host's interface addresses, which are never banned.
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// authorizedKeys reads the receiving account's own authorized_keys, at
// most authkeys.MaxFileSize bytes of it. HOME is the account's home under
// sshd. A file that cannot be read is nil.
func authorizedKeys(env *Env) []byte {
	home := env.Getenv("HOME")
	if home == "" {
		u, err := user.Current()
		if err != nil {
			return nil
		}
		home = u.HomeDir
	}
	f, err := os.Open(filepath.Join(home, ".ssh", "authorized_keys"))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, authkeys.MaxFileSize))
	return b
}

// remoteAddr is the client address from SSH_CONNECTION
// ("CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT"), or the zero Addr.
func remoteAddr(conn string) netip.Addr {
	first, _, _ := strings.Cut(conn, " ")
	a, err := netip.ParseAddr(first)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}
