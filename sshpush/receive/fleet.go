package receive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
)

// Fleet detection: a brute force spread over the fleet's hosts, each of
// which sees too few failures to ban on its own.
//
// Every host reports the failures its fail2ban sees ('banpush
// report-failures', a fail request of records "ADDR jail=J time=T
// failures=N") to every peer, and to its own receiver. Each receiver
// remembers, for each address and each reporting host (named as any
// peer is: by its authorized_keys line or its certificate's key ID), the
// times of its latest failures, and counts: when the failures of an
// address within the window reach FleetPolicy.Failures (T), from at least
// FleetPolicy.Hosts (K) distinct hosts, it writes one fleet line
// (logline.Fleet), which the banpush-fleet jail bans on at once, and
// forgets the address's failures.
//
// Trust: K is at least 2 and one host counts for at most ceil(T/K)
// failures, so no single host, whatever it reports, can make a receiver
// ban: it takes at least K hosts, and T-ceil(T/K) failures from the
// others. Every report spends a token of the peer's bucket, and passes the
// same address policy as a ban (never private, this host's, a peer's,
// --ignore). A report older than the window counts nothing and is
// refused; one from the future counts as now.
//
// Every host reaches the same decision from the same reports: the count
// uses the times the reporting hosts give, not the times of receipt, so
// reports that arrive in another order or late (a peer was down) count
// the same, within the window.
//
// The receiver remembers the failures in LOG.fleet, one line per (host,
// address): "HOST ADDRESS T1,T2,..." (Unix seconds, ascending, at most
// maxFleetTimes). It is read and replaced under LOG.state's lock, as
// LOG.quorum is, and is bounded the same way: at most maxFleetEntries
// lines, shared fairly between the hosts (share.go). Times older than the
// window of the line that reads it are dropped at every read: the lines
// of one log should agree on the window ('banpush doctor' checks).

// FleetPolicy is the fleet detection's threshold, from the forced
// command's --fleet-failures, --fleet-hosts and --fleet-window.
type FleetPolicy struct {
	Failures int           // T: failures over all hosts
	Hosts    int           // K: distinct hosts they come from
	Window   time.Duration // W: how long a failure counts
}

// DefaultFleetPolicy is what --fleet alone means: 10 failures from 3
// hosts within an hour. With fail2ban's default maxretry of 5, 10
// failures over 3 hosts is an address that tried at least 2 or 3 times
// each on 3 hosts without ever reaching 5 on one: a spread brute force,
// not a user who mistyped on one server.
var DefaultFleetPolicy = FleetPolicy{Failures: 10, Hosts: 3, Window: time.Hour}

// Bounds of the fleet policy and its memory.
const (
	MaxFleetFailures = 128
	MaxFleetWindow   = 24 * time.Hour

	maxFleetEntries = 10000
	maxFleetTimes   = MaxFleetFailures / 2 // ceil(T/K) with K >= 2
	maxFleetBytes   = maxFleetEntries * (64 + 40 + maxFleetTimes*12 + 3)
)

// On reports whether the policy counts reports at all.
func (p FleetPolicy) On() bool { return p.Failures > 0 }

// perHost is the most failures one host counts for: T/K, rounded up.
func (p FleetPolicy) perHost() int { return (p.Failures + p.Hosts - 1) / p.Hosts }

func (p FleetPolicy) check() error {
	switch {
	case !p.On():
		return nil
	case p.Hosts < 2 || p.Hosts > MaxQuorumPeers:
		return &ArgError{Flag: "--fleet-hosts", Rule: "from 2 to " + strconv.Itoa(MaxQuorumPeers) + " (one host alone is its own fail2ban's maxretry)"}
	case p.Failures < p.Hosts || p.Failures > MaxFleetFailures:
		return &ArgError{Flag: "--fleet-failures", Rule: "from --fleet-hosts to " + strconv.Itoa(MaxFleetFailures)}
	case p.Window < time.Minute || p.Window > MaxFleetWindow || p.Window%time.Second != 0:
		return &ArgError{Flag: "--fleet-window", Rule: "whole seconds from 1m to 24h"}
	}
	return nil
}

// Fail handles a whole fail request (wire.Fail), as Accept handles a ban
// request: it reads the batch from r, decides every report, counts the
// accepted ones in LOG.fleet, and appends a fleet line for each address
// that reaches the policy's threshold, with one write and an fsync.
func Fail(ctx context.Context, cfg Config, r io.Reader) (Result, error) {
	return cfg.batch(ctx, r, (*Config).fail)
}

func (cfg *Config) fail(ctx context.Context, lines []wire.Line) (Result, error) {
	if !cfg.Fleet.On() {
		var res Result
		for i := range lines {
			res.Refused = append(res.Refused, Refused{Line: i + 1, Reason: record.ErrFleetOff})
		}
		cfg.count(ctx, res)
		return res, nil
	}
	res, ok, okLine := cfg.decide(lines, true)
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
	m, err := loadFleet(cfg.LogPath, now, cfg.Fleet.Window)
	if err != nil {
		return Result{}, fileError(err)
	}
	before := m.clone()
	id := record.PeerID(cfg.Peer)
	b := st.bucket(id, now, cfg.MaxBurst, cfg.MaxPerMinute)
	buf, events := cfg.countReports(&res, ok, okLine, &b, m, now)
	sortRefused(res.Refused)
	if res.Accepted == 0 {
		st.charge(id, b, res)
		return res, nil
	}
	// Remembered before the fleet line is written, as a quorum report
	// is; put back if the log cannot be written.
	if err := cfg.write(m, before, buf, events); err != nil {
		return Result{}, err
	}
	st.charge(id, b, res)
	return res, nil
}

// countReports counts each report the policy let through, in order: refused
// when older than the window, limited when the bucket (or this host's
// share of the memory) is empty, otherwise counted; an address that
// reaches the threshold gets its fleet line. It returns the lines to
// write and the history's events.
func (cfg *Config) countReports(res *Result, ok []record.Record, okLine []int, b *bucket, m *fleetMemory, now time.Time) (buf, events []byte) {
	id := record.PeerID(cfg.Peer)
	stamp := now.Format(logline.TimeLayout)
	p := cfg.Fleet
	oldest := now.Add(-p.Window).Unix()
	for i, rec := range ok {
		at := min(rec.Time, now.Unix())
		if rec.Time == 0 {
			at = now.Unix()
		}
		if at <= oldest {
			res.Refused = append(res.Refused, Refused{Line: okLine[i], Reason: record.ErrOldFailure})
			continue
		}
		if !b.ready() || (!m.has(id, rec.Addr) && !m.room(id)) {
			res.limited(okLine[i])
			continue
		}
		b.take()
		res.Accepted++
		n := max(rec.Failures, 1)
		res.Failures += n
		m.add(id, rec.Addr, at, n)
		failures, hosts := m.tally(rec.Addr, oldest, p.perHost())
		if failures < p.Failures || hosts < p.Hosts {
			continue
		}
		fleet := record.Record{Addr: rec.Addr, Jail: rec.Jail, Time: at, Failures: min(failures, record.MaxFailures)}
		buf = logline.Line{Kind: logline.Fleet, Peer: cfg.Peer, Record: fleet, Hosts: hosts}.AppendStamped(buf, stamp)
		events = appendEvent(events, rec.Addr, now.Unix(), historyBan)
		m.forget(rec.Addr)
		res.Fleet++
	}
	return buf, events
}

// fleetMemory is the content of LOG.fleet: for each address, the times of
// each host's latest failures.
type fleetMemory struct {
	path  string
	times map[netip.Addr]map[string][]int64 // address -> host -> times, ascending
	n     int                               // entries: (host, address) pairs
	count map[string]int                    // host -> its entries
}

func newFleetMemory(path string) *fleetMemory {
	return &fleetMemory{path: path, times: map[netip.Addr]map[string][]int64{}, count: map[string]int{}}
}

// loadFleet reads LOG.fleet, dropping the times outside the window and the
// lines that do not parse. A missing file is an empty memory.
func loadFleet(logPath string, now time.Time, window time.Duration) (*fleetMemory, error) {
	m := newFleetMemory(logPath + ".fleet")
	data, err := readMemory(m.path, "fleet memory", maxFleetBytes)
	if err != nil {
		return nil, err
	}
	m.parse(data, now.Add(-window).Unix(), now.Unix())
	return m, nil
}

// parse adds the entries of data, keeping the times after oldest (those
// after now count as now).
func (m *fleetMemory) parse(data []byte, oldest, now int64) {
	for line := range bytes.Lines(data) {
		if m.n >= maxFleetEntries {
			return
		}
		f := bytes.Fields(line)
		if len(f) != 3 || !record.ValidName(string(f[0])) {
			continue
		}
		a, err := netip.ParseAddr(string(f[1]))
		if err != nil || a.Zone() != "" {
			continue
		}
		for t := range strings.SplitSeq(string(f[2]), ",") {
			at, err := strconv.ParseInt(t, 10, 64)
			if err == nil && at > oldest {
				m.add(string(f[0]), a.Unmap(), min(at, now), 1)
			}
		}
	}
}

// has reports whether host has an entry for addr.
func (m *fleetMemory) has(host string, addr netip.Addr) bool {
	_, ok := m.times[addr][host]
	return ok
}

// add records n failures of addr that host saw at t, keeping the latest
// maxFleetTimes of its times.
func (m *fleetMemory) add(host string, addr netip.Addr, t int64, n int) {
	hosts := m.times[addr]
	if hosts == nil {
		hosts = map[string][]int64{}
		m.times[addr] = hosts
	}
	ts, ok := hosts[host]
	if !ok {
		m.n++
		m.count[host]++
	}
	for range min(n, maxFleetTimes) {
		i, _ := slices.BinarySearch(ts, t)
		ts = slices.Insert(ts, i, t)
	}
	if len(ts) > maxFleetTimes {
		ts = slices.Clone(ts[len(ts)-maxFleetTimes:])
	}
	hosts[host] = ts
}

// tally counts addr's failures after oldest, each host's at most perHost,
// and the hosts they come from.
func (m *fleetMemory) tally(addr netip.Addr, oldest int64, perHost int) (failures, hosts int) {
	for _, ts := range m.times[addr] {
		i, _ := slices.BinarySearch(ts, oldest+1)
		if n := len(ts) - i; n > 0 {
			failures += min(n, perHost)
			hosts++
		}
	}
	return failures, hosts
}

// remove drops host's entry for addr.
func (m *fleetMemory) remove(host string, addr netip.Addr) bool {
	hosts := m.times[addr]
	if _, ok := hosts[host]; !ok {
		return false
	}
	delete(hosts, host)
	if len(hosts) == 0 {
		delete(m.times, addr)
	}
	m.n--
	if m.count[host]--; m.count[host] == 0 {
		delete(m.count, host)
	}
	return true
}

// forget drops every failure of addr: once it is banned, and after an
// unban, old failures must not count again.
func (m *fleetMemory) forget(addr netip.Addr) bool {
	forgot := false
	for h := range m.times[addr] {
		forgot = m.remove(h, addr) || forgot
	}
	return forgot
}

// room says whether host may add an entry, making room for it if the
// memory is full and host is under its share: the entry of the host
// holding the most whose latest failure is oldest is dropped.
func (m *fleetMemory) room(host string) bool {
	victim, ok := fairShare(m.count, m.n, maxFleetEntries, host)
	if !ok || victim == "" {
		return ok
	}
	var addr netip.Addr
	latest := int64(-1)
	for a, hosts := range m.times {
		if ts, ok := hosts[victim]; ok {
			if t := ts[len(ts)-1]; latest < 0 || t < latest || t == latest && a.Less(addr) {
				addr, latest = a, t
			}
		}
	}
	return latest >= 0 && m.remove(victim, addr)
}

// marshal writes the entries sorted, for a file that diffs well.
func (m *fleetMemory) marshal() []byte {
	type entry struct {
		host string
		addr netip.Addr
		ts   []int64
	}
	entries := make([]entry, 0, m.n)
	for a, hosts := range m.times {
		for h, ts := range hosts {
			entries = append(entries, entry{h, a, ts})
		}
	}
	slices.SortFunc(entries, func(x, y entry) int {
		if c := strings.Compare(x.host, y.host); c != 0 {
			return c
		}
		return x.addr.Compare(y.addr)
	})
	var buf []byte
	for _, e := range entries {
		buf = fmt.Appendf(buf, "%s %s ", e.host, e.addr)
		for i, t := range e.ts {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, t, 10)
		}
		buf = append(buf, '\n')
	}
	return buf
}

// save replaces LOG.fleet with the memory, durably.
func (m *fleetMemory) save() error { return saveMemory(m.path, "fleet memory", m.marshal()) }

// clone copies the memory, to put back if the log cannot be written.
func (m *fleetMemory) clone() *fleetMemory {
	c := newFleetMemory(m.path)
	for a, hosts := range m.times {
		c.times[a] = make(map[string][]int64, len(hosts))
		for h, ts := range hosts {
			c.times[a][h] = slices.Clone(ts)
		}
	}
	c.n = m.n
	for h, n := range m.count {
		c.count[h] = n
	}
	return c
}
