package receive

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
)

// An unban request (wire.Unban) asks this host to lift the bans of its
// records' addresses. The receiving account cannot do that itself: the
// receiver writes one unban line per address (logline.Unban), which no filter
// matches, and 'banpush apply-unbans', run by root, reads those lines and
// unbans through fail2ban-client.
//
// Only a key authorized with --allow-unban may unban (Config.AllowUnban);
// the unbans of any other key are refused one by one, and nothing is
// written. Unbans are checked against the policy and spend the peer's
// tokens as bans do.
//
// The receiver remembers each unban in LOG.unbans, one line per peer and
// address: "ADDRESS UNIXSECONDS PEER LIFTED", the time of the peer's
// latest unban of the address, the peer (PeerID), and the time of its
// latest unban of it that had a ban here to lift (LOG.history says, see
// history.go), or 0. The file is replaced whole under the lock of
// LOG.state like LOG.quorum. For the unban window of the banning peer's
// key (--unban-window, default 10 minutes) after such an unban, a ban of
// the address is refused as stale (record.ErrStale): a ban still in
// flight when the address was unbanned does not put it straight back. The
// unbanning peer's own bans are held back after every unban of it; the
// other peers' bans only after one that lifted something, so that a peer
// cannot hold back the others' bans of addresses that were never banned
// here by unbanning them. A fresh ban after the window bans again. An
// unban also forgets the quorum reports of its address.
//
// An unban writes the memory without the entries older than the largest
// --unban-window of the log's keys (Config.UnbanHold), which no ban can
// be stale for any more; every read drops those older than
// MaxUnbanWindow. The memory holds at most maxUnbanEntries, shared fairly
// between the peers (share.go): past its share of a full memory, a peer's
// new unbans are refused as rate-limited (the sender keeps them queued).
// Lines of the older form "ADDRESS UNIXSECONDS" are read as the unban of
// a peer unknown (unknownPeer) that lifted something.

const (
	// DefaultUnbanWindow is the default --unban-window; MaxUnbanWindow
	// bounds it.
	DefaultUnbanWindow = 10 * time.Minute
	MaxUnbanWindow     = 24 * time.Hour

	maxUnbanEntries = 20000
	maxUnbanBytes   = maxUnbanEntries * 128

	// unknownPeer is the peer of a line of the older form: no peer name.
	unknownPeer = "*"
)

// Unban handles a whole unban request (wire.Unban), as Accept handles a
// ban request: it reads the batch from r, decides every record, and for
// the accepted ones appends unban lines to the log with one write and an
// fsync, and remembers them in LOG.unbans.
func Unban(ctx context.Context, cfg Config, r io.Reader) (Result, error) {
	return cfg.batch(ctx, r, (*Config).unban)
}

func (cfg *Config) unban(ctx context.Context, lines []wire.Line) (Result, error) {
	if !cfg.AllowUnban {
		return cfg.refuseUnbans(ctx, lines), nil
	}
	res, ok, okLine := cfg.decide(lines, false)
	if len(ok) == 0 {
		cfg.count(ctx, res)
		return res, nil
	}

	st, err := cfg.lockState(ctx)
	if err != nil {
		return Result{}, err
	}
	defer st.close()

	now := cfg.Now()
	unbans, err := loadUnbans(cfg.LogPath, now)
	if err != nil {
		return Result{}, fileError(err)
	}
	unbans.expire(now, cfg.unbanHold())
	before := unbans.clone()
	q, err := loadQuorum(cfg.LogPath, now)
	if err != nil {
		return Result{}, fileError(err)
	}
	fm, err := loadFleet(cfg.LogPath, now, MaxFleetWindow)
	if err != nil {
		return Result{}, fileError(err)
	}
	banned, err := bannedHere(cfg.LogPath, addrsOf(ok), now)
	if err != nil {
		return Result{}, fileError(err)
	}
	id := record.PeerID(cfg.Peer)
	b := st.bucket(id, now, cfg.MaxBurst, cfg.MaxPerMinute)
	var buf, events []byte
	stamp := now.Format(logline.TimeLayout)
	forgot, forgotFailures := false, false
	for i, rec := range ok {
		if !b.ready() || (!unbans.has(id, rec.Addr) && !unbans.room(id)) {
			res.limited(okLine[i])
			continue
		}
		b.take()
		res.Accepted++
		unbans.add(id, rec.Addr, now, banned[rec.Addr])
		forgot = q.forget(rec.Addr) || forgot
		forgotFailures = fm.forget(rec.Addr) || forgotFailures
		buf = logline.Line{Kind: logline.Unban, Peer: cfg.Peer, Record: rec}.AppendStamped(buf, stamp)
		events = appendEvent(events, rec.Addr, now.Unix(), historyUnban)
	}
	sortRefused(res.Refused)
	if len(buf) == 0 {
		st.charge(id, b, res)
		return res, nil
	}
	// Remembered before written, as a quorum report is: the window must
	// hold from the moment the unban line can be applied.
	if err := cfg.write(unbans, before, buf, events); err != nil {
		return Result{}, err
	}
	// Best effort: a report or a failure left behind counts for its
	// window at most.
	if forgot {
		_ = q.save()
	}
	if forgotFailures {
		_ = fm.save()
	}
	st.charge(id, b, res)
	return res, nil
}

// refuseUnbans refuses every unban of a peer not allowed to unban here.
func (cfg *Config) refuseUnbans(ctx context.Context, lines []wire.Line) Result {
	var res Result
	for i := range lines {
		res.Refused = append(res.Refused, Refused{Line: i + 1, Reason: record.ErrUnbanDenied})
	}
	cfg.count(ctx, res)
	return res
}

// addrsOf lists the records' addresses.
func addrsOf(recs []record.Record) []netip.Addr {
	addrs := make([]netip.Addr, len(recs))
	for i, rec := range recs {
		addrs[i] = rec.Addr
	}
	return addrs
}

// unbanHold is how long an unban is remembered: the largest
// --unban-window of the log's keys (Config.UnbanHold), at least this
// key's; MaxUnbanWindow when it is not known.
func (cfg *Config) unbanHold() time.Duration {
	h := cfg.UnbanHold
	if h <= 0 || h > MaxUnbanWindow {
		h = MaxUnbanWindow
	}
	return max(h, cfg.UnbanWindow)
}

// unbanMemory is the content of LOG.unbans: for each address, the peers
// that unbanned it here, and when.
type unbanMemory struct {
	path  string
	at    map[netip.Addr]map[string]unbanEntry // address -> peer -> its unbans
	n     int                                  // entries
	count map[string]int                       // peer -> its entries

	// evictable lists a peer's entries, the oldest first, once one of
	// them is to be replaced (room).
	evictable map[string][]unbanKey
}

// unbanEntry is one peer's unbans of one address, Unix seconds: its latest,
// and its latest that had a ban here to lift (0: none).
type unbanEntry struct{ at, lifted int64 }

type unbanKey struct {
	peer string
	addr netip.Addr
	at   int64
}

func newUnbanMemory(path string) *unbanMemory {
	return &unbanMemory{path: path, at: map[netip.Addr]map[string]unbanEntry{}, count: map[string]int{}}
}

// loadUnbans reads LOG.unbans, dropping entries older than MaxUnbanWindow
// at now and lines that do not parse. A missing file is an empty memory.
func loadUnbans(logPath string, now time.Time) (*unbanMemory, error) {
	m := newUnbanMemory(logPath + ".unbans")
	data, err := readMemory(m.path, "unban memory", maxUnbanBytes)
	if err != nil {
		return nil, err
	}
	m.parse(data, now)
	return m, nil
}

// parse adds the entries of data not older than MaxUnbanWindow at now.
func (m *unbanMemory) parse(data []byte, now time.Time) {
	oldest := now.Add(-MaxUnbanWindow).Unix()
	for line := range bytes.Lines(data) {
		if m.n >= maxUnbanEntries {
			return
		}
		f := bytes.Split(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
		if len(f) != 2 && len(f) != 4 {
			continue
		}
		addr, err1 := record.ParseAddr(string(f[0]))
		at, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil || at < oldest {
			continue
		}
		peer, lifted := unknownPeer, at // the older form: no peer, and it lifted something
		if len(f) == 4 {
			var err error
			peer = string(f[2])
			lifted, err = strconv.ParseInt(string(f[3]), 10, 64)
			if err != nil || !record.ValidName(peer) || lifted < 0 || lifted > at {
				continue
			}
		}
		m.set(peer, addr, unbanEntry{at, lifted})
	}
}

// set records e as peer's unbans of addr, keeping the later of each time.
func (m *unbanMemory) set(peer string, addr netip.Addr, e unbanEntry) {
	peers := m.at[addr]
	if peers == nil {
		peers = map[string]unbanEntry{}
		m.at[addr] = peers
	}
	if old, ok := peers[peer]; ok {
		peers[peer] = unbanEntry{max(old.at, e.at), max(old.lifted, e.lifted)}
		return
	}
	peers[peer] = e
	m.n++
	m.count[peer]++
}

// remove drops peer's unbans of addr.
func (m *unbanMemory) remove(peer string, addr netip.Addr) {
	peers := m.at[addr]
	if _, ok := peers[peer]; !ok {
		return
	}
	delete(peers, peer)
	if len(peers) == 0 {
		delete(m.at, addr)
	}
	m.n--
	if m.count[peer]--; m.count[peer] == 0 {
		delete(m.count, peer)
	}
}

// stale reports whether a ban of addr from peer is stale at now for the
// banning key's window: less than window after an unban of addr by peer
// itself, or after one by any peer that had a ban here to lift.
func (m *unbanMemory) stale(peer string, addr netip.Addr, now time.Time, window time.Duration) bool {
	w := int64(window / time.Second)
	for p, e := range m.at[addr] {
		if (p == peer && now.Unix() < e.at+w) || (e.lifted > 0 && now.Unix() < e.lifted+w) {
			return true
		}
	}
	return false
}

// expire drops the entries whose latest unban is hold or more before now.
func (m *unbanMemory) expire(now time.Time, hold time.Duration) {
	oldest := now.Unix() - int64(hold/time.Second)
	for a, peers := range m.at {
		for p, e := range peers {
			if e.at <= oldest {
				m.remove(p, a)
			}
		}
	}
}

func (m *unbanMemory) has(peer string, addr netip.Addr) bool {
	_, ok := m.at[addr][peer]
	return ok
}

// add remembers peer's unban of addr at now, and whether it had a ban
// here to lift.
func (m *unbanMemory) add(peer string, addr netip.Addr, now time.Time, lifts bool) {
	e := unbanEntry{at: now.Unix()}
	if lifts {
		e.lifted = e.at
	}
	m.set(peer, addr, e)
}

// room says whether peer may add an entry, making room for it if the
// memory is full and peer is under its share (share.go): the oldest entry
// of the peer holding the most is dropped.
func (m *unbanMemory) room(peer string) bool {
	victim, ok := fairShare(m.count, m.n, maxUnbanEntries, peer)
	if !ok || victim == "" {
		return ok
	}
	if m.evictable == nil {
		m.evictable = map[string][]unbanKey{}
	}
	list, listed := m.evictable[victim]
	if !listed {
		for a, peers := range m.at {
			if e, ok := peers[victim]; ok {
				list = append(list, unbanKey{victim, a, e.at})
			}
		}
		slices.SortFunc(list, func(x, y unbanKey) int {
			if x.at != y.at {
				return cmp.Compare(x.at, y.at)
			}
			return x.addr.Compare(y.addr)
		})
	}
	for len(list) > 0 {
		k := list[0]
		list = list[1:]
		if e, ok := m.at[k.addr][victim]; ok && e.at == k.at {
			m.remove(victim, k.addr)
			m.evictable[victim] = list
			return true
		}
	}
	m.evictable[victim] = list
	return false
}

func (m *unbanMemory) clone() *unbanMemory {
	c := newUnbanMemory(m.path)
	for a, peers := range m.at {
		c.at[a] = maps.Clone(peers)
	}
	c.n = m.n
	c.count = maps.Clone(m.count)
	return c
}

// marshal writes the entries sorted by address, then peer.
func (m *unbanMemory) marshal() []byte {
	addrs := make([]netip.Addr, 0, len(m.at))
	for a := range m.at {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	var b []byte
	for _, a := range addrs {
		for _, p := range slices.Sorted(maps.Keys(m.at[a])) {
			e := m.at[a][p]
			b = a.AppendTo(b)
			b = append(b, ' ')
			b = strconv.AppendInt(b, e.at, 10)
			if p == unknownPeer {
				b = append(b, '\n') // the older form says as much
				continue
			}
			b = append(b, ' ')
			b = append(b, p...)
			b = append(b, ' ')
			b = strconv.AppendInt(b, e.lifted, 10)
			b = append(b, '\n')
		}
	}
	return b
}

// save replaces LOG.unbans with the memory, durably.
func (m *unbanMemory) save() error { return saveMemory(m.path, "unban memory", m.marshal()) }
