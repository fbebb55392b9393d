package receive

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// A quorum peer's addresses do not ban on their own. Each is written as a
// report line (logline.Report), at most one per (peer, address) per quorum
// window, and the receiver itself counts: when a report makes N distinct
// peers (--quorum N) with a live report of the address, it also writes a
// quorum line (logline.Quorum), which the banpush-quorum jail bans on at once
// (maxretry 1). fail2ban does not count, because its count is not exact
// across findtime: fail2ban 1.0.2 rescales a ticket older than findtime
// instead of forgetting it, so one peer reporting again just after the
// window would count twice.
//
// The receiver remembers the live reports in LOG.quorum, one line each:
// "PEER ADDRESS EXPIRY" (Unix seconds: the report's time plus the window of
// the line that wrote it, so that lines with different windows share the
// file). The file is read and replaced (written beside it, fsynced,
// renamed) under the lock of LOG.state, which serializes every receiver of
// the log. Expired entries are dropped at every read.
//
// Its size is bounded by the rate limit: every record of a quorum peer,
// new or repeated, spends a token of its bucket, so a peer holds at most
// --max-burst + --max-per-minute x window entries. The whole file holds at
// most maxQuorumEntries, shared fairly between the peers (share.go): once
// it is full, a peer under its share replaces the entry that expires first
// of the peer holding the most, and a peer at or over its share has its
// new reports refused as rate-limited, which can delay a ban but never
// cause one. A damaged line is dropped; a file that cannot be read at all
// is an error (nothing is written), never an empty memory.

const (
	// DefaultQuorumWindow is the default --quorum-window.
	DefaultQuorumWindow = time.Hour
	// MaxQuorumWindow bounds --quorum-window.
	MaxQuorumWindow = 30 * 24 * time.Hour
	// DefaultQuorumPeers is the default --quorum; MaxQuorumPeers bounds it.
	DefaultQuorumPeers = 2
	MaxQuorumPeers     = 1000

	maxQuorumEntries = 20000
	maxQuorumBytes   = maxQuorumEntries * 120
)

// quorumMemory is the content of LOG.quorum: for each address, the peers
// with a live report of it and when each report expires.
type quorumMemory struct {
	path    string
	reports map[netip.Addr]map[string]int64 // address -> peer -> expiry (Unix seconds)
	n       int                             // entries
	count   map[string]int                  // peer -> its entries

	// evictable lists a peer's entries, the one expiring first first,
	// once one of them is to be replaced (room).
	evictable map[string][]quorumEntry
}

type quorumEntry struct {
	peer string
	addr netip.Addr
	exp  int64
}

func newQuorumMemory(path string) *quorumMemory {
	return &quorumMemory{path: path, reports: map[netip.Addr]map[string]int64{}, count: map[string]int{}}
}

// loadQuorum reads LOG.quorum, dropping the entries expired at now and the
// lines that do not parse. A missing file is an empty memory.
func loadQuorum(logPath string, now time.Time) (*quorumMemory, error) {
	m := newQuorumMemory(logPath + ".quorum")
	data, err := readMemory(m.path, "quorum memory", maxQuorumBytes)
	if err != nil {
		return nil, err
	}
	m.parse(data, now.Unix())
	return m, nil
}

// readMemory reads one of the receiver's memory files beside the log,
// at most limit bytes, without following a symlink. A missing file reads
// as empty; one that cannot be read at all is an error.
func readMemory(path, what string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", what, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("opening %s: not a regular file", what)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return data, nil
}

// saveMemory replaces a memory file with data, durably, 0600.
func saveMemory(path, what string, data []byte) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("saving %s: is a symbolic link", what)
	}
	if err := fsutil.WriteAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving %s: %w", what, err)
	}
	return nil
}

// parse adds the entries of data that expire after now.
func (m *quorumMemory) parse(data []byte, now int64) {
	for line := range bytes.Lines(data) {
		if m.n >= maxQuorumEntries {
			return
		}
		f := bytes.Fields(line)
		if len(f) != 3 || !record.ValidName(string(f[0])) {
			continue
		}
		a, err1 := netip.ParseAddr(string(f[1]))
		exp, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil || a.Zone() != "" || exp <= now {
			continue
		}
		m.set(string(f[0]), a.Unmap(), exp)
	}
}

// set records that peer's report of addr expires at exp, keeping the
// later expiry of two.
func (m *quorumMemory) set(peer string, addr netip.Addr, exp int64) {
	peers := m.reports[addr]
	if peers == nil {
		peers = map[string]int64{}
		m.reports[addr] = peers
	}
	if old, ok := peers[peer]; ok {
		peers[peer] = max(old, exp)
		return
	}
	peers[peer] = exp
	m.n++
	m.count[peer]++
}

// remove drops peer's report of addr, if there is one.
func (m *quorumMemory) remove(peer string, addr netip.Addr) bool {
	peers := m.reports[addr]
	if _, ok := peers[peer]; !ok {
		return false
	}
	delete(peers, peer)
	if len(peers) == 0 {
		delete(m.reports, addr)
	}
	m.n--
	if m.count[peer]--; m.count[peer] == 0 {
		delete(m.count, peer)
	}
	return true
}

// live says whether peer has a report of addr that has not expired at
// now: then another is not written.
func (m *quorumMemory) live(peer string, addr netip.Addr, now time.Time) bool {
	exp, ok := m.reports[addr][peer]
	return ok && now.Unix() < exp
}

// peers counts the distinct peers with a live report of addr at now.
func (m *quorumMemory) peers(addr netip.Addr, now time.Time) int {
	n := 0
	for _, exp := range m.reports[addr] {
		if now.Unix() < exp {
			n++
		}
	}
	return n
}

// room says whether peer may add a report, making room for it if the
// memory is full and peer is under its share (share.go): the report of
// the peer holding the most that expires first is dropped.
func (m *quorumMemory) room(peer string) bool {
	victim, ok := fairShare(m.count, m.n, maxQuorumEntries, peer)
	if !ok || victim == "" {
		return ok
	}
	if m.evictable == nil {
		m.evictable = map[string][]quorumEntry{}
	}
	list, listed := m.evictable[victim]
	if !listed {
		for a, peers := range m.reports {
			if exp, ok := peers[victim]; ok {
				list = append(list, quorumEntry{victim, a, exp})
			}
		}
		slices.SortFunc(list, func(x, y quorumEntry) int {
			if x.exp != y.exp {
				return cmp.Compare(x.exp, y.exp)
			}
			return x.addr.Compare(y.addr)
		})
	}
	// Entries the peer no longer holds (forgotten, or dropped already)
	// are passed over.
	for len(list) > 0 {
		e := list[0]
		list = list[1:]
		if exp, ok := m.reports[e.addr][victim]; ok && exp == e.exp && m.remove(victim, e.addr) {
			m.evictable[victim] = list
			return true
		}
	}
	m.evictable[victim] = list
	return false
}

// add remembers peer's report of addr at now, live for window.
func (m *quorumMemory) add(peer string, addr netip.Addr, now time.Time, window time.Duration) {
	m.set(peer, addr, now.Unix()+int64(window/time.Second))
}

// marshal writes the entries sorted, for a file that diffs well.
func (m *quorumMemory) marshal() []byte {
	type entry struct {
		peer string
		addr netip.Addr
		exp  int64
	}
	entries := make([]entry, 0, m.n)
	for a, peers := range m.reports {
		for p, exp := range peers {
			entries = append(entries, entry{p, a, exp})
		}
	}
	slices.SortFunc(entries, func(x, y entry) int {
		if c := strings.Compare(x.peer, y.peer); c != 0 {
			return c
		}
		return x.addr.Compare(y.addr)
	})
	var buf []byte
	for _, e := range entries {
		buf = fmt.Appendf(buf, "%s %s %d\n", e.peer, e.addr, e.exp)
	}
	return buf
}

// save replaces LOG.quorum with the memory, durably.
func (m *quorumMemory) save() error { return saveMemory(m.path, "quorum memory", m.marshal()) }

// forget drops every report of addr: after an unban, old reports must not
// make a quorum with one new report.
func (m *quorumMemory) forget(addr netip.Addr) bool {
	forgot := false
	for p := range m.reports[addr] {
		forgot = m.remove(p, addr) || forgot
	}
	return forgot
}

// clone copies the memory, to put back if the log cannot be written.
func (m *quorumMemory) clone() *quorumMemory {
	c := newQuorumMemory(m.path)
	for a, peers := range m.reports {
		c.reports[a] = maps.Clone(peers)
	}
	c.n = m.n
	c.count = maps.Clone(m.count)
	return c
}
