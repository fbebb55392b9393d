// Package spool is banpush's durable local queue: one append-only journal
// that `banpush push` writes to, and a cursor per peer that the sender moves
// forward as peers acknowledge records.
//
// Appending costs one write and one fsync under a short lock, whatever the
// number of peers: peers are never looked at on that path. Each peer reads
// the journal from its own cursor, so delivery is at-least-once: a crash
// resends what was acknowledged after the cursor was last advanced (the
// sender advances it a second or so after a delivery, 10 s at most, and
// when it stops), never anything behind a cursor.
//
// Layout of a spool directory (created 0700, files 0600):
//
//	append.lock          flock for appends; holds the current segment number (a hint)
//	journal/NNNN...      segments, 16-digit zero-padded sequence numbers from 1
//	cursors/PEER         "SEG OFFSET\n": the peer's first unacknowledged record
//	peers/PEER.json      the peer's delivery state (State)
//	cancels              "ADDRESS UNIX-NANOS" lines: bans of the address queued
//	                     up to that time are not to be delivered (Cancels)
//
// Package sender keeps its own files beside these (its lock, its wake-up
// pipe, its log): it owns the sender's lifecycle, and the methods here that
// say so must be called with its lock held.
//
// A journal line is
//
//	CRC32C-HEX8 SP QUEUED-UNIX-NANOS SP ["unban" SP | "fail" SP] ["to=" PEER SP] RECORD-WIRE-TEXT LF
//
// where the Castagnoli checksum covers everything between the first space
// and the newline. A line without "unban" is a ban; a line without "to="
// is for every peer (the only form of journals older than these words,
// which read on unchanged). A reader skips, counts and reports lines that fail the
// checksum or do not parse (a torn write, a bad block, garbage), keeps every
// line that passes, and carries on.
//
// What it trusts: the spool directory belongs to the user running banpush
// (root, under fail2ban) and nobody else writes to it; its content, however,
// may be truncated or damaged by crashes and disks, and is checked. Peer
// names must pass record.ValidName; they become file names.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// DefaultSegmentSize is the size past which appends start a new segment.
const DefaultSegmentSize = 1 << 20

// Options tune a Spool. The zero value is what banpush uses.
type Options struct {
	// SegmentSize is the size in bytes past which Append starts a new
	// segment; 0 means DefaultSegmentSize.
	SegmentSize int64
}

// Spool is an open spool directory. Its methods may be called from several
// goroutines and several processes at once, except where a method says it
// needs the sender lock.
type Spool struct {
	dir         string
	appendLock  string // path of append.lock
	segPrefix   string // path of the journal directory, with a trailing slash
	segmentSize int64
	noSync      bool // tests and benchmarks only: skip fsync
}

// ErrPeerName is returned for a peer name that record.ValidName refuses.
var ErrPeerName = errors.New("spool: invalid peer name")

// ErrPosition is returned for a position beyond the end of the journal.
var ErrPosition = errors.New("spool: position beyond the end of the journal")

// Open opens the spool in dir, creating it and its subdirectories (0700) if
// they are missing. It does not change the mode of existing directories,
// and refuses a spool directory that group or others may write to.
func Open(dir string, opt Options) (*Spool, error) {
	s := &Spool{dir: filepath.Clean(dir), segmentSize: opt.SegmentSize}
	if s.segmentSize <= 0 {
		s.segmentSize = DefaultSegmentSize
	}
	s.appendLock = s.path(appendLockName)
	s.segPrefix = s.path(journalDir) + "/"
	for _, d := range []string{s.dir, s.path(journalDir), s.path(cursorDir), s.path(peerDir)} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	// Whoever can write here can make this host push bans to its peers, and
	// a symlinked subdirectory would have Compact delete files elsewhere: the
	// spool and its subdirectories must be real directories of this user
	// that nobody else may write.
	for _, d := range []string{s.dir, s.path(journalDir), s.path(cursorDir), s.path(peerDir)} {
		if err := checkDir(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// OpenExisting opens the spool in dir as Open does, if dir exists; if it
// does not (nothing was ever queued on this host), it makes nothing and
// returns nil and no error. It is for the commands that only look.
func OpenExisting(dir string, opt Options) (*Spool, error) {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return Open(dir, opt)
}

// checkDir refuses anything but a directory owned by the effective user and
// not writable by group or others.
func checkDir(d string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s: not a directory", d)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("spool: %s: writable by group or others (chmod 700 it)", d)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("spool: %s: owned by another user", d)
	}
	return nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// JournalDir returns the directory of the journal's segments: a file in it
// is created or written whenever Append queues records, so a sender may
// watch it to learn of new records at once.
func (s *Spool) JournalDir() string { return s.path(journalDir) }

const (
	journalDir     = "journal"
	cursorDir      = "cursors"
	peerDir        = "peers"
	appendLockName = "append.lock"
)

// path joins names (never empty, never "." or "..") to the spool directory.
func (s *Spool) path(elem ...string) string {
	n := len(s.dir)
	for _, e := range elem {
		n += 1 + len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, s.dir...)
	for _, e := range elem {
		b = append(b, '/')
		b = append(b, e...)
	}
	return string(b)
}

// Position is a place in the journal: a segment number and a byte offset in
// it. The zero Position is the start of the retained journal, wherever it
// begins after compaction.
type Position struct {
	Seg uint64
	Off int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Seg < q.Seg || p.Seg == q.Seg && p.Off < q.Off
}

// String returns "segment N offset M", the form used in messages.
func (p Position) String() string {
	return "segment " + strconv.FormatUint(p.Seg, 10) + " offset " + strconv.FormatInt(p.Off, 10)
}

// Kind is what a queued record asks of a peer.
type Kind uint8

// The kinds.
const (
	Ban     Kind = iota // ban the address (what 'banpush push' queues)
	Unban               // lift the address's ban (what 'banpush unban' queues)
	Failure             // a failure report (what 'banpush report-failures' queues)
)

// String returns "ban", "unban" or "fail".
func (k Kind) String() string {
	switch k {
	case Unban:
		return unbanWord
	case Failure:
		return failWord
	}
	return "ban"
}

// Item is one thing to queue: a record, what to do with it, and for whom.
type Item struct {
	Kind   Kind
	To     string // the one peer it is for (a valid name), or "" for every peer
	Record record.Record
}

// For reports whether the item is for peer.
func (it Item) For(peer string) bool { return it.To == "" || it.To == peer }

// Entry is one item read from the journal.
type Entry struct {
	Item
	Queued time.Time // when it was appended
	Next   Position  // just after this entry: Advance to it once it is acknowledged
}

// Skipped describes journal bytes that Read could not use: adjacent corrupt
// lines are reported together.
type Skipped struct {
	Pos    Position // where the skipped bytes start
	Lines  int
	Bytes  int64
	Reason string // a fixed text, never the bytes themselves
}

// String returns a message for a log line, such as
// "spool: segment 3 offset 120: 2 corrupt lines (96 bytes) skipped: bad checksum".
func (k Skipped) String() string {
	lines := "1 corrupt line"
	if k.Lines != 1 {
		lines = strconv.Itoa(k.Lines) + " corrupt lines"
	}
	return fmt.Sprintf("spool: %s: %s (%d bytes) skipped: %s", k.Pos, lines, k.Bytes, k.Reason)
}

// CorruptFileError reports a cursor or state file that could not be parsed.
// The spool has already repaired it (a cursor goes back to the start of the
// journal, a state file is removed), so the next call succeeds; the error is
// there to be logged.
type CorruptFileError struct {
	Path   string // relative to the spool directory, e.g. "cursors/web1"
	Reason string
}

func (e *CorruptFileError) Error() string {
	return "spool: " + e.Path + ": " + e.Reason
}

func checkPeer(peer string) error {
	if !record.ValidName(peer) {
		return ErrPeerName
	}
	return nil
}
