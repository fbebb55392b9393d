package receive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/account"
	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/wire"
)

// Receiver is one run of the receiver as sshd starts it for a pushing
// peer's session: the forced command's arguments from authorized_keys, and
// what sshd passes it. Run handles its one request.
type Receiver struct {
	// Argv are the forced command's arguments from the word "receive"
	// on: the local administrator's, trusted (ParseArgs).
	Argv []string
	// Getenv gives what sshd sets: SSH_ORIGINAL_COMMAND (the request,
	// the peer's: hostile until parsed), SSH_CONNECTION, SSH_USER_AUTH
	// and HOME.
	Getenv func(string) string
	Stdin  io.Reader // the batch or the stream: the peer's, hostile
	Stdout io.Writer // the answer
	Stderr io.Writer // the refusals, by line number and fixed reason
	Now    func() time.Time
	// Version is answered to a ping.
	Version string
	// LocalAddrs lists this host's addresses, which no peer may ban here.
	LocalAddrs func() []netip.Addr
	// Limits bound what a peer may hold; zero fields take the defaults.
	Limits SessionLimits
}

// SessionLimits bound how long and how much a peer's session may take.
type SessionLimits struct {
	BatchTimeout   time.Duration // the whole batch of a ban or unban request must arrive within this
	StreamIdle     time.Duration // a stream ends after this long without a byte
	StreamLifetime time.Duration // a stream ends this long after it began, whatever the sender does
	MaxBatches     int           // a stream ends after this many batches
	MaxShown       int           // refusal lines sent back per batch
}

// DefaultSessionLimits are the limits a zero field of SessionLimits means.
var DefaultSessionLimits = SessionLimits{
	BatchTimeout:   30 * time.Second,
	StreamIdle:     60 * time.Second,
	StreamLifetime: 10 * time.Minute,
	MaxBatches:     100000,
	MaxShown:       100,
}

func (l SessionLimits) orDefaults() SessionLimits {
	d := DefaultSessionLimits
	if l.BatchTimeout > 0 {
		d.BatchTimeout = l.BatchTimeout
	}
	if l.StreamIdle > 0 {
		d.StreamIdle = l.StreamIdle
	}
	if l.StreamLifetime > 0 {
		d.StreamLifetime = l.StreamLifetime
	}
	if l.MaxBatches > 0 {
		d.MaxBatches = l.MaxBatches
	}
	if l.MaxShown > 0 {
		d.MaxShown = l.MaxShown
	}
	return d
}

// ExitError is how a session ends when it does not answer: the exit
// status the peer sees (wire.ExitRequest, ...), and for the receiving
// host's administrator a hint, when there is one.
type ExitError struct {
	Status int
	Err    error
	Hint   string
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Run handles the session's request: a ping, a batch of bans, unbans or
// failure reports, or a stream of batches. It returns nil once the answer is written, or an
// *ExitError.
func (s Receiver) Run(ctx context.Context) error {
	lim := s.Limits.orDefaults()
	a, err := ParseArgs(s.Argv)
	var cfg Config
	if err == nil {
		_, cfg, err = a.Check(s.Now)
	}
	if err != nil {
		// The arguments come from authorized_keys: the local admin's
		// mistake; the peer only learns that the receiver is
		// misconfigured.
		return &ExitError{Status: wire.ExitConfig, Err: err, Hint: "fix the command= option in authorized_keys ('banpush authorize' writes it)"}
	}
	if a.PeerFromCert {
		if cfg.Peer, err = s.certPeer(); err != nil {
			return err
		}
	}
	req, err := wire.ParseRequest(s.Getenv("SSH_ORIGINAL_COMMAND"))
	if err != nil {
		return &ExitError{Status: wire.ExitRequest, Err: err}
	}
	if req == wire.Ping {
		// A ping tests what a batch would need: a receiver that cannot
		// write its log says so now, not at the next ban.
		if err := Writable(cfg.LogPath); err != nil {
			return exitError(cfg.LogPath, err)
		}
		line, err := wire.PingAnswer{Peer: cfg.Peer, Version: s.Version}.Marshal()
		if err == nil {
			_, err = s.Stdout.Write(append(line, '\n'))
		}
		return err
	}

	// At most a few receivers per peer at once: a peer that holds sessions
	// open gets no more memory and processes here than that.
	sess, err := AcquireSession(cfg.LogPath, cfg.Peer, DefaultMaxSessions)
	if err != nil {
		return exitError(cfg.LogPath, err)
	}
	defer sess.Release()
	s.policy(&cfg, req)
	if req == wire.Stream {
		w := bufio.NewWriter(s.Stdout)
		err := Serve(ctx, cfg, idleReader(s.Stdin, lim.StreamIdle, time.Now().Add(lim.StreamLifetime)), w, s.Stderr,
			StreamLimits{MaxBatches: lim.MaxBatches, MaxShown: lim.MaxShown})
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil // a silent sender: every batch so far is answered
		}
		return exitError(cfg.LogPath, err)
	}
	handle := Accept
	switch req {
	case wire.Unban:
		handle = Unban
	case wire.Fail:
		handle = Fail
	}
	res, err := handle(ctx, cfg, deadlineReader(s.Stdin, lim.BatchTimeout))
	if err != nil {
		return exitError(cfg.LogPath, err)
	}
	return WriteAnswer(s.Stdout, s.Stderr, res, lim.MaxShown)
}

// policy completes cfg's address policy with what the session knows: this
// host's addresses, the connecting peer's, and the fleet's pushers (the
// from= options of authorized_keys), none of which a peer may ban here.
func (s Receiver) policy(cfg *Config, req wire.Request) {
	if s.LocalAddrs != nil {
		cfg.Policy.Local = s.LocalAddrs()
	}
	cfg.Policy.Remote = remoteAddr(s.Getenv("SSH_CONNECTION"))
	keys := s.authorizedKeys()
	cfg.Policy.Peers = authkeys.FromPrefixes(keys)
	if req == wire.Unban {
		cfg.UnbanHold = UnbanHoldFromKeys(keys, cfg.LogPath)
	}
}

// certPeer names the pushing peer after the user certificate sshd verified
// for the session (--peer-from-cert): its key ID, from the file sshd names
// in SSH_USER_AUTH. Anything short of exactly that is the receiving host's
// setup to fix, and the peer is refused before a byte of it is read.
func (s Receiver) certPeer() (string, error) {
	data, err := ReadAuthInfo(s.Getenv("SSH_USER_AUTH"))
	if err == nil {
		var name string
		if name, err = PeerFromAuthInfo(data, s.Now()); err == nil {
			return name, nil
		}
	}
	var ae *AuthInfoError
	if errors.As(err, &ae) {
		return "", &ExitError{Status: wire.ExitConfig, Err: fmt.Errorf("%w: nothing read, nothing written", err), Hint: ae.Hint}
	}
	return "", &ExitError{Status: wire.ExitConfig, Err: err}
}

// exitError gives what the receiver returned, for the log at logPath, its
// exit status. A log it cannot write while root has the log's directory
// closed to the account (account.Closed: a rotation, or setup-account at
// work) is a busy one: the same batch goes through in a moment.
func exitError(logPath string, err error) error {
	var temp *TempError
	var unwritable *WriteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unwritable) && account.Closed(filepath.Dir(logPath)):
		return &ExitError{Status: wire.ExitTemp, Err: fmt.Errorf("the log's directory is closed while root rotates or sets up the log, try again later: %w", unwritable.Err)}
	case errors.Is(err, wire.ErrBatchTooLarge), errors.Is(err, os.ErrDeadlineExceeded):
		return &ExitError{Status: wire.ExitData, Err: err}
	case errors.Is(err, ErrTooManySessions):
		return &ExitError{Status: wire.ExitTemp, Err: fmt.Errorf("%w (at most %d): nothing read, try again later", err, DefaultMaxSessions)}
	case errors.As(err, &unwritable):
		return &ExitError{Status: wire.ExitCannotWrite, Err: err}
	case errors.As(err, &temp):
		return &ExitError{Status: wire.ExitTemp, Err: err}
	}
	return &ExitError{Status: wire.ExitData, Err: err}
}

// authorizedKeys reads the receiving account's own authorized_keys, at
// most authkeys.MaxFileSize bytes of it. HOME is the account's home under
// sshd. A file that cannot be read is nil.
func (s Receiver) authorizedKeys() []byte {
	home := s.Getenv("HOME")
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
