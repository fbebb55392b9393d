package receive

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
)

// An unban request (wire.Unban) asks this host to lift the bans of its
// records' addresses. The receiving account cannot do that itself: the
// receiver writes one unban line per address (UnbanTag), which no filter
// matches, and 'banpush apply-unbans', run by root, reads those lines and
// unbans through fail2ban-client.
//
// Only a key authorized with --allow-unban may unban (Config.AllowUnban);
// the unbans of any other key are refused one by one, and nothing is
// written. Unbans are checked against the policy and spend the peer's
// tokens as bans do.
//
// The receiver remembers each unban in LOG.unbans, one line per address:
// "ADDRESS UNIXSECONDS", the time of its latest unban, replaced whole
// under the lock of LOG.state like LOG.quorum. For the unban window of the
// banning peer's key (--unban-window, default 10 minutes), a ban of that
// address is refused as stale (record.ErrStale): a ban still in flight
// when the address was unbanned does not put it straight back. A fresh
// ban after the window bans again. An unban also forgets the quorum
// reports of its address. Entries older than MaxUnbanWindow are dropped
// at every read; past maxUnbanEntries, new unbans are refused as
// rate-limited (the sender keeps them queued).

const (
	// UnbanTag marks an unban in the log: a line that no filter matches,
	// which 'banpush apply-unbans' reads.
	UnbanTag = "banpush: unban"

	// DefaultUnbanWindow is the default --unban-window; MaxUnbanWindow
	// bounds it.
	DefaultUnbanWindow = 10 * time.Minute
	MaxUnbanWindow     = 24 * time.Hour

	maxUnbanEntries = 20000
	maxUnbanBytes   = maxUnbanEntries * 64
)

// Unban handles a whole unban request (wire.Unban), as Accept handles a
// ban request: it reads the batch from r, decides every record, and for
// the accepted ones appends unban lines to the log with one write and an
// fsync, and remembers them in LOG.unbans.
func Unban(ctx context.Context, cfg Config, r io.Reader) (Result, error) {
	if err := cfg.Check(); err != nil {
		return Result{}, err
	}
	lines, err := wire.ReadBatch(r)
	if err != nil {
		return Result{}, err
	}
	return cfg.unban(ctx, lines)
}

func (cfg *Config) unban(ctx context.Context, lines []wire.Line) (Result, error) {
	if !cfg.AllowUnban {
		var res Result
		for i := range lines {
			res.Refused = append(res.Refused, Refused{Line: i + 1, Reason: record.ErrUnbanDenied})
		}
		cfg.count(ctx, res)
		return res, nil
	}
	res, ok, okLine := cfg.decide(lines)
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
		return Result{}, &TempError{err}
	}
	before := unbans.clone()
	q, err := loadQuorum(cfg.LogPath, now)
	if err != nil {
		return Result{}, &TempError{err}
	}
	id := PeerID(cfg.Peer)
	b := st.bucket(id, now, cfg.MaxBurst, cfg.MaxPerMinute)
	var buf []byte
	stamp := now.Format(TimeLayout)
	forgot := false
	for i, rec := range ok {
		if (unbans.full() && !unbans.has(rec.Addr)) || !b.take() {
			res.limited(okLine[i])
			continue
		}
		res.Accepted++
		unbans.add(rec.Addr, now)
		forgot = q.forget(rec.Addr) || forgot
		buf = AppendUnbanLine(buf, stamp, cfg.Peer, rec)
	}
	sortRefused(res.Refused)
	if len(buf) == 0 {
		st.charge(id, b, res)
		return res, nil
	}
	// Remembered before written, as a quorum report is: the window must
	// hold from the moment the unban line can be applied.
	if err := unbans.save(); err != nil {
		return Result{}, &TempError{err}
	}
	if err := appendLog(cfg.LogPath, buf); err != nil {
		_ = before.save()
		return Result{}, &TempError{err}
	}
	if forgot {
		// Best effort: a report left behind counts for its window at most.
		_ = q.save()
	}
	st.charge(id, b, res)
	return res, nil
}

// AppendUnbanLine appends the unban line for rec, received from peer at
// the time stamp, as AppendLogLine does for a ban. The record's bantime,
// meaningless for an unban, is left out.
func AppendUnbanLine(b []byte, stamp, peer string, rec record.Record) []byte {
	rec.BanTime = 0
	return append(appendLine(b, stamp, UnbanTag, peer, rec), '\n')
}

// unbanMemory is the content of LOG.unbans: when each address was last
// unbanned here.
type unbanMemory struct {
	path string
	at   map[netip.Addr]int64 // Unix seconds
}

// loadUnbans reads LOG.unbans, dropping entries older than MaxUnbanWindow
// at now and lines that do not parse. A missing file is an empty memory.
func loadUnbans(logPath string, now time.Time) (*unbanMemory, error) {
	m := &unbanMemory{path: logPath + ".unbans", at: map[netip.Addr]int64{}}
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
		if len(m.at) >= maxUnbanEntries {
			return
		}
		a, t, ok := bytes.Cut(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
		if !ok {
			continue
		}
		addr, err1 := record.ParseAddr(string(a))
		at, err2 := strconv.ParseInt(string(t), 10, 64)
		if err1 != nil || err2 != nil || at < oldest {
			continue
		}
		m.at[addr] = max(m.at[addr], at)
	}
}

// recent reports whether addr was unbanned less than window before now.
func (m *unbanMemory) recent(addr netip.Addr, now time.Time, window time.Duration) bool {
	at, ok := m.at[addr]
	return ok && now.Unix() < at+int64(window/time.Second)
}

func (m *unbanMemory) has(addr netip.Addr) bool { _, ok := m.at[addr]; return ok }
func (m *unbanMemory) full() bool               { return len(m.at) >= maxUnbanEntries }
func (m *unbanMemory) add(addr netip.Addr, now time.Time) {
	m.at[addr] = max(m.at[addr], now.Unix())
}

func (m *unbanMemory) clone() *unbanMemory {
	return &unbanMemory{path: m.path, at: maps.Clone(m.at)}
}

// marshal writes the entries sorted by address.
func (m *unbanMemory) marshal() []byte {
	addrs := make([]netip.Addr, 0, len(m.at))
	for a := range m.at {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	var b []byte
	for _, a := range addrs {
		b = a.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendInt(b, m.at[a], 10)
		b = append(b, '\n')
	}
	return b
}

// save replaces LOG.unbans with the memory, durably.
func (m *unbanMemory) save() error { return saveMemory(m.path, "unban memory", m.marshal()) }
