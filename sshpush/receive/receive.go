// Package receive is the receiving end of banpush: the code that runs as an
// authorized_keys forced command on a peer, reads a batch of ban records
// from a pushing server, and appends the acceptable ones to a log that the
// peer's own fail2ban watches.
//
// What it trusts: its Config, which comes from the authorized_keys line
// written by the peer's administrator. What it does not trust: the request
// word (SSH_ORIGINAL_COMMAND), the batch on stdin, and the pushing server
// behind them, which may be compromised. Every record is parsed and checked
// against the policy before anything is written; the log line is built only
// from validated values; and a per-peer token bucket bounds how many
// addresses one peer can add over time.
package receive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
	"golang.org/x/sys/unix"
)

// Defaults for the token bucket and the log lock.
const (
	DefaultMaxBurst     = 2000
	DefaultMaxPerMinute = 120
	DefaultLockTimeout  = 5 * time.Second
)

// Bounds of the token bucket's settings: far beyond any sensible fleet,
// and small enough that its arithmetic is exact (see refill).
const (
	MaxMaxBurst     = 1 << 30
	MaxMaxPerMinute = 1 << 30
)

// TempError means nothing was written and the same batch may succeed later
// as it is: the lock that serializes the log's receivers could not be had
// in time.
type TempError struct{ Err error }

func (e *TempError) Error() string { return "log busy, nothing written: " + e.Err.Error() }
func (e *TempError) Unwrap() error { return e.Err }

// WriteError means nothing was written because the receiver cannot use its
// log or a file beside it (LOG.state, LOG.sessions, its memories): the
// account may not write it, the disk is full, a link or a directory stands
// where the file should be. Unlike a TempError, waiting does not help: a
// person must fix the receiving host, and the same batch succeeds once
// they have.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "cannot write the log, nothing written: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// fileError is what a failure on the log or a file beside it means for
// the batch: a lock not had in time is a *TempError, anything else a
// *WriteError.
func fileError(err error) error {
	if errors.Is(err, fsutil.ErrLockTimeout) {
		return &TempError{err}
	}
	return &WriteError{err}
}

// Config is what the authorized_keys line says about one pushing peer.
type Config struct {
	Peer         string        // name of the pushing peer, from --peer
	LogPath      string        // absolute path of the log fail2ban watches
	Policy       record.Policy // which addresses may be banned here
	MaxBurst     int           // token bucket size
	MaxPerMinute int           // token bucket refill rate
	LockTimeout  time.Duration // how long to wait for the log lock
	Now          func() time.Time

	// Quorum, when positive, makes the peer a quorum peer: its addresses
	// are written as report lines (logline.Report), each live for this
	// window, and a report that makes QuorumPeers distinct peers with a
	// live report of the address adds a quorum line (logline.Quorum),
	// which the banpush-quorum jail bans on (see quorum.go). Zero is full
	// trust: ban lines (logline.Ban).
	Quorum      time.Duration
	QuorumPeers int

	// AllowUnban lets the peer lift bans here (wire.Unban): without it,
	// each of its unbans is refused (record.ErrUnbanDenied). UnbanWindow
	// is how long after an unban of an address this peer's bans of it
	// are refused as stale (record.ErrStale): a ban already in flight
	// when the address was unbanned must not put it straight back. Zero
	// is no window ('banpush receive' defaults to DefaultUnbanWindow).
	AllowUnban  bool
	UnbanWindow time.Duration

	// Fleet, when its Failures is positive, lets the peer report the
	// failures its fail2ban saw (wire.Fail) and counts them with every
	// other host's: see fleet.go. The zero FleetPolicy refuses reports.
	Fleet FleetPolicy

	// UnbanHold is how long an unban is remembered: the largest
	// UnbanWindow of the keys that write this log ('banpush receive'
	// reads them in authorized_keys when it receives an unban). Zero or
	// more than MaxUnbanWindow: MaxUnbanWindow.
	UnbanHold time.Duration
}

// ArgError is a setting that cannot be used, named by the flag of
// 'banpush receive' that sets it (the receiver's settings come from its
// command line in authorized_keys).
type ArgError struct {
	Flag  string // "--peer"
	Value string // the value, quoted in the message; empty leaves it out
	Rule  string // what it must be
}

func (e *ArgError) Error() string {
	v := ""
	if e.Value != "" {
		v = " " + strconv.Quote(e.Value)
	}
	return "receive: " + e.Flag + v + " must be " + e.Rule
}

// Check reports a Config that cannot be used with an *ArgError naming the
// bad setting. It is the one place where the receiver's settings are
// checked; 'banpush authorize' checks what it writes with it too.
func (c *Config) Check() error {
	switch {
	case !record.ValidName(c.Peer):
		return &ArgError{Flag: "--peer", Rule: "1 to 64 characters from [A-Za-z0-9._-]"}
	case c.LogPath == "" || c.LogPath[0] != '/':
		return &ArgError{Flag: "--log", Rule: "an absolute path"}
	case c.MaxBurst < 1 || c.MaxBurst > MaxMaxBurst:
		return &ArgError{Flag: "--max-burst", Rule: "from 1 to " + strconv.Itoa(MaxMaxBurst)}
	case c.MaxPerMinute < 0 || c.MaxPerMinute > MaxMaxPerMinute:
		return &ArgError{Flag: "--max-per-minute", Rule: "from 0 to " + strconv.Itoa(MaxMaxPerMinute)}
	case c.Quorum < 0 || c.Quorum > 0 && (c.Quorum < time.Minute || c.Quorum > MaxQuorumWindow || c.Quorum%time.Second != 0):
		return &ArgError{Flag: "--quorum-window", Rule: "whole seconds from 1m to 720h (30 days)"}
	case c.UnbanWindow < 0 || c.UnbanWindow > MaxUnbanWindow || c.UnbanWindow%time.Second != 0:
		return &ArgError{Flag: "--unban-window", Rule: "whole seconds from 0s (no window) to 24h"}
	case c.Quorum > 0 && (c.QuorumPeers < 2 || c.QuorumPeers > MaxQuorumPeers):
		return &ArgError{Flag: "--quorum", Rule: "from 2 to " + strconv.Itoa(MaxQuorumPeers) + " (one peer alone is --trust full)"}
	}
	return c.Fleet.check()
}

// Refused is one refused record: its line number (from 1) and why.
type Refused struct {
	Line   int
	Reason record.Refusal
}

// Result is the outcome of one batch.
type Result struct {
	Accepted int       // records written to the log, or counted already (Repeated)
	Refused  []Refused // every other record, in line order

	// Repeated counts a quorum peer's records accepted without a line:
	// its report of the address is already in the log within the window.
	Repeated int

	// Limited counts the refusals for the rate limit, and LimitedFrom is
	// the line of the first: an honest sender keeps that record and the
	// ones after it queued, and sends them again later.
	Limited, LimitedFrom int

	// Failures counts the failures the accepted reports of a fail
	// request stand for, and Fleet the fleet lines they made (fleet.go).
	Failures, Fleet int
}

// Answer is the answer line for the batch (see wire.Answer).
func (r Result) Answer() wire.Answer {
	return wire.Answer{Accepted: r.Accepted, Refused: len(r.Refused), Limited: r.Limited, LimitedFrom: r.LimitedFrom}
}

// Accept handles a whole ban request (wire.Ban): it reads the batch from
// r, decides every record, and appends the accepted ones to the log with one
// write and an fsync. Nothing is written unless the whole batch could be
// read and the log could be locked; on any error after that, the log is
// left as it was.
func Accept(ctx context.Context, cfg Config, r io.Reader) (Result, error) {
	return cfg.batch(ctx, r, (*Config).accept)
}

// batch checks the settings, reads a whole batch from r and hands it to
// handle: every request of one batch (ban, unban, fail) starts so.
func (cfg Config) batch(ctx context.Context, r io.Reader, handle func(*Config, context.Context, []wire.Line) (Result, error)) (Result, error) {
	if err := cfg.Check(); err != nil {
		return Result{}, err
	}
	lines, err := wire.ReadBatch(r)
	if err != nil {
		return Result{}, err
	}
	return handle(&cfg, ctx, lines)
}

// decide checks every line of a batch against the policy, and returns
// the records that pass with their line numbers; the others are refused in
// res. Only the records of a failure report (reports) may give a count of
// failures.
func (cfg *Config) decide(lines []wire.Line, reports bool) (res Result, ok []record.Record, okLine []int) {
	seen := make(map[[16]byte]bool, len(lines))
	ok = make([]record.Record, 0, len(lines))
	okLine = make([]int, 0, len(lines))
	for i, l := range lines {
		err := l.Err
		if err == nil && !reports && l.Record.Failures != 0 {
			err = record.ErrNotAReport
		}
		if err == nil {
			err = cfg.Policy.Check(l.Record.Addr)
		}
		if err == nil && seen[l.Record.Addr.As16()] {
			err = record.ErrDuplicateAddr
		}
		if err != nil {
			res.Refused = append(res.Refused, Refused{Line: i + 1, Reason: reason(err)})
			continue
		}
		seen[l.Record.Addr.As16()] = true
		ok = append(ok, l.Record)
		okLine = append(okLine, i+1)
	}
	return res, ok, okLine
}

// limited refuses line for the rate limit.
func (res *Result) limited(line int) {
	res.Refused = append(res.Refused, Refused{Line: line, Reason: record.ErrRateLimit})
	if res.Limited == 0 {
		res.LimitedFrom = line
	}
	res.Limited++
}

// accept decides every line of a batch and writes the accepted ones.
func (cfg *Config) accept(ctx context.Context, lines []wire.Line) (Result, error) {
	res, ok, okLine := cfg.decide(lines, false)
	if len(ok) == 0 {
		// Nothing to write and nothing to charge: leave the log alone, and
		// count the refusals if the state can be had at once.
		cfg.count(ctx, res)
		return res, nil
	}

	st, err := cfg.lockState(ctx)
	if err != nil {
		return Result{}, err
	}
	defer st.close()

	now := cfg.Now()
	var q, before *quorumMemory
	if cfg.Quorum > 0 {
		if q, err = loadQuorum(cfg.LogPath, now); err != nil {
			return Result{}, fileError(err)
		}
		before = q.clone()
	}
	unbans, err := loadUnbans(cfg.LogPath, now)
	if err != nil {
		return Result{}, fileError(err)
	}
	id := record.PeerID(cfg.Peer)
	b := st.bucket(id, now, cfg.MaxBurst, cfg.MaxPerMinute)
	buf, events := cfg.admit(&res, ok, okLine, &b, q, unbans, now)
	sortRefused(res.Refused)
	if len(buf) == 0 {
		st.charge(id, b, res)
		return res, nil
	}
	// A quorum peer's reports are remembered before they are written.
	var mem, undo memory
	if q != nil {
		mem, undo = q, before
	}
	if err := cfg.write(mem, undo, buf, events); err != nil {
		return Result{}, err
	}
	st.charge(id, b, res)
	return res, nil
}

// memory is one of the receiver's memories beside the log (LOG.quorum,
// LOG.unbans, LOG.fleet).
type memory interface{ save() error }

// write saves mem (nil: none), then appends buf to the log with one write
// and an fsync (nothing when buf is empty) and the history's events (best
// effort, history.go). If the log cannot be written, undo, the memory as
// it was, is saved back: a memory is a count, and must not hold what the
// log lacks.
func (cfg *Config) write(mem, undo memory, buf, events []byte) error {
	if mem != nil {
		if err := mem.save(); err != nil {
			return fileError(err)
		}
	}
	if len(buf) == 0 {
		return nil
	}
	if err := appendLog(cfg.LogPath, buf); err != nil {
		if undo != nil {
			_ = undo.save() // nothing was written: forget it again
		}
		return fileError(err)
	}
	_ = appendHistory(cfg.LogPath, events)
	return nil
}

// admit decides each record the policy let through, in order: refused as
// stale where an unban of its address holds it back, limited when the
// bucket (or this peer's share of the quorum memory) is empty, and
// otherwise taken. It returns the log lines to write and the history's
// events, and counts in res.
func (cfg *Config) admit(res *Result, ok []record.Record, okLine []int, b *bucket, q *quorumMemory, unbans *unbanMemory, now time.Time) (buf, events []byte) {
	id := record.PeerID(cfg.Peer)
	stamp := now.Format(logline.TimeLayout)
	for i, rec := range ok {
		if unbans.stale(id, rec.Addr, now, cfg.UnbanWindow) {
			res.Refused = append(res.Refused, Refused{Line: okLine[i], Reason: record.ErrStale})
			continue
		}
		repeated := q != nil && q.live(id, rec.Addr, now)
		// Every record spends a token, a repeated report too: a peer
		// cannot hold the receivers' lock, reading the memory, for free.
		if !b.ready() || (q != nil && !repeated && !q.room(id)) {
			res.limited(okLine[i])
			continue
		}
		b.take()
		res.Accepted++
		switch {
		case q == nil:
			buf = logline.Line{Kind: logline.Ban, Peer: cfg.Peer, Record: rec}.AppendStamped(buf, stamp)
			events = appendEvent(events, rec.Addr, now.Unix(), historyBan)
		case repeated:
			// Reported already within the window: counted once.
			res.Repeated++
		default:
			q.add(id, rec.Addr, now, cfg.Quorum)
			buf = logline.Line{Kind: logline.Report, Peer: cfg.Peer, Record: rec}.AppendStamped(buf, stamp)
			if n := q.peers(rec.Addr, now); n >= cfg.QuorumPeers {
				buf = logline.Line{Kind: logline.Quorum, Peer: cfg.Peer, Record: rec, Reports: n}.AppendStamped(buf, stamp)
				events = appendEvent(events, rec.Addr, now.Unix(), historyBan)
			}
		}
	}
	return buf, events
}

// lockState opens LOG.state and takes the lock that serializes every
// receiver of the log, waiting at most LockTimeout; failing that, nothing
// may be written (a *TempError, or a *WriteError when the file cannot be
// opened at all).
func (cfg *Config) lockState(ctx context.Context) (*stateFile, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.LockTimeout)
	defer cancel()
	st, err := openState(ctx, cfg.LogPath+".state")
	if err != nil {
		return nil, fileError(err)
	}
	return st, nil
}

// charge saves the peer's bucket with the batch's tokens spent and its
// result counted. Once the log is written, a failure here only leaves the
// bucket fuller than it should be.
func (st *stateFile) charge(peer string, b bucket, res Result) {
	b.count.add(res)
	st.put(peer, b)
	_ = st.save()
}

// count adds a batch that wrote nothing to the peer's counters, if the
// state's lock can be had within a moment: counting is never worth
// delaying an answer for.
func (cfg *Config) count(ctx context.Context, res Result) {
	if len(res.Refused) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	st, err := openState(ctx, cfg.LogPath+".state")
	if err != nil {
		return
	}
	defer st.close()
	id := record.PeerID(cfg.Peer)
	st.charge(id, st.bucket(id, cfg.Now(), cfg.MaxBurst, cfg.MaxPerMinute), res)
}

func reason(err error) record.Refusal {
	var r record.Refusal
	if errors.As(err, &r) {
		return r
	}
	return record.ErrBadAddr
}

// sortRefused orders refusals by line; rate-limited ones were appended late.
func sortRefused(r []Refused) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j].Line < r[j-1].Line; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}

// appendLog appends buf to the log with one write and an fsync. The caller
// holds the state lock, which serializes every receiver of this log. The
// log itself is not locked: its group (adm) may read it, and a lock needs
// no more than that, so any reader could stop every receiver by holding
// one. If the write fails part-way, the log is truncated back to its old
// length so that no torn line is left for fail2ban to read.
func appendLog(path string, buf []byte) error {
	f, err := openLog(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Truncate(fi.Size())
		return fmt.Errorf("writing log: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(fi.Size())
		return fmt.Errorf("syncing log: %w", err)
	}
	return nil
}

// openLog opens the log for appending without following a symlink, creating
// it with mode 0640 if it is missing, and refuses anything but a regular
// file.
func openLog(path string) (*os.File, error) {
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := unix.Open(path, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0o640)
		if err == nil {
			err = unix.Fchmod(fd, 0o640) // whatever the umask
		}
		if errors.Is(err, unix.EEXIST) {
			fd, err = unix.Open(path, flags, 0)
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.ELOOP):
			return nil, errors.New("opening log: is a symbolic link")
		case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENXIO): // ENXIO: a FIFO
			return nil, errors.New("opening log: not a regular file")
		}
		return nil, fmt.Errorf("opening log: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("opening log: not a regular file")
	}
	return f, nil
}

// Writable reports, without writing anything, whether a batch could be
// written to the log at logPath: the log and the state file beside it
// (LOG.state, whose lock every batch takes) open for writing, or, where
// one is missing, the directory lets the receiver make it, as a batch
// would. It returns a *WriteError naming the first that fails. A ping
// (wire.Ping) answers with it, so that a sender's check finds a receiver
// that cannot write before a batch does; a full disk shows only when a
// batch is written.
func Writable(logPath string) error {
	for _, f := range []struct{ path, what string }{{logPath, "log"}, {logPath + ".state", "rate-limit state"}} {
		const flags = unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
		fd, err := unix.Open(f.path, flags|unix.O_APPEND, 0)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Access(filepath.Dir(f.path), unix.W_OK|unix.X_OK); err != nil {
				return &WriteError{fmt.Errorf("making the %s: its directory: %w", f.what, err)}
			}
			continue
		}
		switch {
		case errors.Is(err, unix.ELOOP):
			return &WriteError{fmt.Errorf("opening the %s: is a symbolic link", f.what)}
		case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENXIO):
			return &WriteError{fmt.Errorf("opening the %s: not a regular file", f.what)}
		case err != nil:
			return &WriteError{fmt.Errorf("opening the %s: %w", f.what, err)}
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return &WriteError{fmt.Errorf("opening the %s: not a regular file", f.what)}
		}
	}
	return nil
}

// WriteAnswer writes the refusal lines and the answer of a batch: refusals
// to stderr (at most maxShown of them, then a count), the answer to stdout.
func WriteAnswer(stdout, stderr io.Writer, res Result, maxShown int) error {
	var b []byte
	for i, r := range res.Refused {
		if i == maxShown {
			b = wire.AppendNotShown(b, len(res.Refused)-maxShown)
			break
		}
		b = wire.AppendRefusal(b, r.Line, r.Reason)
	}
	if len(b) > 0 {
		if _, err := stderr.Write(b); err != nil {
			return err
		}
	}
	_, err := stdout.Write(append(res.Answer().AppendTo(nil), '\n'))
	return err
}
