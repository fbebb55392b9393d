package receive

import (
	"bytes"
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

// A quorum peer's addresses are written as report lines (ReportTag), not
// ban lines, and a separate jail (contrib/fail2ban/jail.d/banpush-quorum.conf)
// bans an address once maxretry of them are within its findtime. For that
// count to be a count of distinct peers, the receiver writes at most one
// report line per (peer, address) per quorum window, which must equal the
// jail's findtime. It remembers the reports it wrote in LOG.quorum, one line
// each: "PEER ADDRESS UNIXSECONDS". The file is read and replaced (written
// beside it, fsynced, renamed) under the lock of LOG.state, which serializes
// every receiver of the log.
//
// Its size is bounded by the rate limit: a new report spends a token of the
// peer's bucket, and entries older than the window are dropped at every
// read, so a peer holds at most --max-burst + --max-per-minute x window
// entries. The whole file holds at most maxQuorumEntries: past that, new
// reports are refused as rate-limited, which can delay a ban but never
// cause one. A damaged line is dropped; a file that cannot be read at all
// is an error (nothing is written), never an empty memory, since forgetting
// a report could let one peer count twice.

const (
	// ReportTag marks a quorum peer's report in the log. The banpush
	// filter never matches it; the banpush-quorum filter matches nothing
	// else.
	ReportTag = "banpush: report"

	// DefaultQuorumWindow is the default --quorum-window, the same as
	// the findtime of contrib/fail2ban/jail.d/banpush-quorum.conf.
	DefaultQuorumWindow = time.Hour
	// MaxQuorumWindow bounds --quorum-window.
	MaxQuorumWindow = 30 * 24 * time.Hour

	maxQuorumEntries = 50000
	maxQuorumBytes   = maxQuorumEntries * 120
)

type reportKey struct {
	peer string
	addr netip.Addr
}

// quorumMemory is the content of LOG.quorum: when each (peer, address)
// was last written as a report.
type quorumMemory struct {
	path string
	last map[reportKey]int64 // Unix seconds
}

// loadQuorum reads LOG.quorum, dropping entries older than window at now
// and lines that do not parse. A missing file is an empty memory.
func loadQuorum(logPath string, now time.Time, window time.Duration) (*quorumMemory, error) {
	m := &quorumMemory{path: logPath + ".quorum", last: map[reportKey]int64{}}
	fd, err := unix.Open(m.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening quorum memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), m.path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("opening quorum memory: not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxQuorumBytes))
	if err != nil {
		return nil, fmt.Errorf("reading quorum memory: %w", err)
	}
	m.parse(data, now.Unix()-int64(window/time.Second))
	return m, nil
}

// parse adds the entries of data written after since.
func (m *quorumMemory) parse(data []byte, since int64) {
	for line := range bytes.Lines(data) {
		if len(m.last) >= maxQuorumEntries {
			return
		}
		f := bytes.Fields(line)
		if len(f) != 3 || !record.ValidName(string(f[0])) {
			continue
		}
		a, err1 := netip.ParseAddr(string(f[1]))
		t, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil || a.Zone() != "" || t <= since {
			continue
		}
		k := reportKey{string(f[0]), a.Unmap()}
		m.last[k] = max(m.last[k], t)
	}
}

// reported says whether peer's report of addr was written within window
// of now: then another is not written. A report from a clock that went
// back counts as recent.
func (m *quorumMemory) reported(peer string, addr netip.Addr, now time.Time, window time.Duration) bool {
	t, ok := m.last[reportKey{peer, addr}]
	return ok && now.Unix()-t <= int64(window/time.Second)
}

// full says whether the memory has no room for another report.
func (m *quorumMemory) full() bool { return len(m.last) >= maxQuorumEntries }

func (m *quorumMemory) add(peer string, addr netip.Addr, now time.Time) {
	m.last[reportKey{peer, addr}] = now.Unix()
}

// marshal writes the entries sorted, for a file that diffs well.
func (m *quorumMemory) marshal() []byte {
	keys := make([]reportKey, 0, len(m.last))
	for k := range m.last {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reportKey) int {
		if c := strings.Compare(a.peer, b.peer); c != 0 {
			return c
		}
		return a.addr.Compare(b.addr)
	})
	var buf []byte
	for _, k := range keys {
		buf = fmt.Appendf(buf, "%s %s %d\n", k.peer, k.addr, m.last[k])
	}
	return buf
}

// save replaces LOG.quorum with the memory, durably.
func (m *quorumMemory) save() error {
	if fi, err := os.Lstat(m.path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return errors.New("saving quorum memory: is a symbolic link")
	}
	if err := fsutil.WriteAtomic(m.path, m.marshal(), 0o600); err != nil {
		return fmt.Errorf("saving quorum memory: %w", err)
	}
	return nil
}

// clone copies the memory, to put back if the log cannot be written.
func (m *quorumMemory) clone() *quorumMemory {
	return &quorumMemory{path: m.path, last: maps.Clone(m.last)}
}

// AppendReportLine appends the report line of a quorum peer for rec, as
// AppendLogLine does for a ban.
func AppendReportLine(b []byte, stamp, peer string, rec record.Record) []byte {
	return appendLine(b, stamp, ReportTag, peer, rec)
}
