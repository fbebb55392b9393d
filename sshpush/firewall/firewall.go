// Package firewall is banpush's fast path on a receiving host: it follows
// the received log, as the receiving jails of fail2ban would read it, and
// puts the addresses they would ban into the kernel set (sshpush/nftset)
// in batches, one transaction per batch, with per-address timeouts that
// equal what is left of each ban; unban lines lift them. It keeps the bans
// it made in a compact state file beside its cursor, from which a restart,
// or a boot that emptied the kernel, restores every ban in one batch.
//
// It decides as the jails would, from their own configuration (Jail,
// FromDump): a ban line only where the banpush jail is enabled, a quorum
// line only where banpush-quorum is, a fleet line only where
// banpush-fleet is, a report line never; only a line that the jail's own
// failregex matches; never an address of the jail's ignoreip, nor one the
// receiver's policy refuses (record.Policy: special-purpose ranges,
// private ones unless allowed, this host's own); for the jail's bantime
// from the line's time stamp, so that a line whose ban has run out is not
// banned at all.
//
// What it trusts: its Config (root's command line and fail2ban's
// configuration, as root reads them) and the kernel. What it does not
// trust: the received log, which the receiving account writes. Lines are
// read with logline's bound and parsed strictly (logline.Parse, then the
// jail's filter); nothing of a line but its address, kind and time
// stamp is used. The state and cursor live in a directory of root's alone
// (logtail.LockCursor checks it).
package firewall

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/record"
)

// Kernel is the kernel set (nftset.Set is one).
type Kernel interface {
	Ensure() error
	Add(elems []nftset.Element, replace []netip.Addr) error
	Delete(addrs []netip.Addr) error
	List() ([]nftset.Member, error)
}

// Config says what to follow and how to decide. Everything in it is
// trusted.
type Config struct {
	Log   string // the received log, an absolute path; LOG.1 is beside it
	State string // the cursor file; STATE.bans and STATE.lock beside it
	Jails []Jail // the enabled receiving jails
	// Policy is the receiver's: which addresses may be banned at all
	// (with this host's own addresses in Local, as fail2ban's ignoreself).
	Policy record.Policy
	// PeerAllows, when set, may let through an address Policy refuses
	// (a private one): true where the receiver line of the peer that
	// sent it takes it, as the receiver did when it wrote the line.
	PeerAllows func(peer string, addr netip.Addr) bool
	// MaxBatch bounds the lines read for one transaction (default
	// DefaultMaxBatch).
	MaxBatch int
	Now      func() time.Time
}

// DefaultMaxBatch is the default of Config.MaxBatch.
const DefaultMaxBatch = 50000

// lockTimeout bounds the wait for another follower of the same cursor.
const lockTimeout = 2 * time.Second

// StatePath is the state file beside the cursor at state.
func StatePath(state string) string { return state + ".bans" }

// Report is what one run (or a start) read and did.
type Report struct {
	Start    logtail.Start `json:"start,omitempty"`
	Restored int           `json:"restored,omitempty"` // bans put back into the kernel by Start
	Lines    int           `json:"lines"`              // lines read
	Added    int           `json:"added"`              // addresses added to the kernel (or given a longer ban)
	Lifted   int           `json:"lifted"`             // addresses lifted by unban lines
	Skipped  Skipped       `json:"skipped"`
	Bans     int           `json:"bans"` // bans in force after the run
}

// Skipped counts lines that banned nothing, by reason.
type Skipped struct {
	Bad      int `json:"bad"`      // malformed, too long, not printable, cut short
	NoJail   int `json:"no_jail"`  // a kind no enabled jail bans on (reports, a disabled jail's)
	Filter   int `json:"filter"`   // the jail's failregex does not match it
	Ignored  int `json:"ignored"`  // in the jail's ignoreip
	Refused  int `json:"refused"`  // the receiver's policy refuses the address
	Expired  int `json:"expired"`  // its ban ran out before it was read
	Known    int `json:"known"`    // banned already, as long or longer
	NotIn    int `json:"not_in"`   // an unban of an address not banned here
	Outdated int `json:"outdated"` // restored from the state file: expired since
}

// Engine follows the log for one service. It holds the cursor's lock
// from Start to Close.
type Engine struct {
	cfg  Config
	k    Kernel
	lock *os.File
	cur  *logtail.Cursor
	bans Bans
}

// Start takes the cursor's lock, reads the state file, makes the kernel
// set, and makes it hold exactly the state's bans still in force: those
// missing (after a restart of the kernel, a flush) are added in one batch,
// with what is left of each; members the state no longer has are lifted.
// Without a state file, the cursor is not used either: the log is read
// from its start (with LOG.1), and only its lines still in force ban.
func Start(ctx context.Context, cfg Config, k Kernel) (*Engine, Report, error) {
	var rep Report
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	lock, err := logtail.LockCursor(ctx, cfg.State, lockTimeout)
	if err != nil {
		return nil, rep, err
	}
	e := &Engine{cfg: cfg, k: k, lock: lock}
	if err := e.start(&rep); err != nil {
		lock.Close()
		return nil, rep, err
	}
	return e, rep, nil
}

func (e *Engine) start(rep *Report) error {
	bans, err := LoadState(StatePath(e.cfg.State))
	if err != nil {
		return err
	}
	if bans != nil {
		if e.cur, err = logtail.LoadCursor(e.cfg.State); err != nil {
			return err
		}
	} else {
		bans = Bans{}
	}
	if err := e.k.Ensure(); err != nil {
		return err
	}
	now := e.cfg.Now()
	for a, end := range bans {
		if !Live(end, now) {
			delete(bans, a)
			rep.Skipped.Outdated++
		}
	}
	e.bans = bans
	// Local unbans asked while the service was stopped: lifted before
	// anything is restored.
	if err := e.applyLifts(rep); err != nil {
		return err
	}
	members, err := e.k.List()
	if err != nil {
		return err
	}
	in := make(map[netip.Addr]nftset.Member, len(members))
	for _, m := range members {
		in[m.Addr] = m
	}
	var add []nftset.Element
	var replace, lift []netip.Addr
	for a, end := range bans {
		m, ok := in[a]
		if ok && sameEnd(m, end, now) {
			continue
		}
		add = append(add, element(a, end, now))
		if ok {
			replace = append(replace, a)
		}
	}
	for a := range in {
		if _, ok := bans[a]; !ok && e.cur != nil {
			lift = append(lift, a)
		}
	}
	if err := e.k.Add(add, replace); err != nil {
		return err
	}
	if err := e.k.Delete(lift); err != nil {
		return err
	}
	rep.Restored = len(add)
	rep.Bans = len(bans)
	return nil
}

// sameEnd reports whether the kernel's member ends when the ban does,
// within two seconds (the kernel counts in jiffies, the state in
// seconds).
func sameEnd(m nftset.Member, end, now time.Time) bool {
	if end.IsZero() || m.Permanent() {
		return end.IsZero() && m.Permanent()
	}
	d := now.Add(m.Expires).Sub(end)
	return d > -2*time.Second && d < 2*time.Second
}

// element is the kernel element of a ban ending at end (zero: never).
func element(a netip.Addr, end, now time.Time) nftset.Element {
	if end.IsZero() {
		return nftset.Element{Addr: a}
	}
	return nftset.Element{Addr: a, Timeout: max(end.Sub(now), time.Second)}
}

// SetJails replaces the jails the engine decides with: a service
// restores the kernel set from its state (Start) before it reads
// fail2ban's configuration, which a boot may not have ready.
func (e *Engine) SetJails(js []Jail) { e.cfg.Jails = js }

// Close releases the cursor's lock. The kernel set stays as it is: its
// timeouts go on running.
func (e *Engine) Close() error { return e.lock.Close() }

// Bans returns the bans in force now, as the engine holds them.
func (e *Engine) Bans() Bans {
	now := e.cfg.Now()
	out := make(Bans, len(e.bans))
	for a, end := range e.bans {
		if Live(end, now) {
			out[a] = end
		}
	}
	return out
}

// Run reads the lines written since the cursor and applies them: each
// batch of at most MaxBatch lines in one kernel transaction, then the
// state file, then the cursor. A run killed in between reads the last
// batch again, which changes nothing the kernel does not hold already.
func (e *Engine) Run(ctx context.Context) (Report, error) {
	var rep Report
	if err := e.applyLifts(&rep); err != nil {
		return rep, err
	}
	r, err := logtail.Open(e.cfg.Log, e.cur, logline.MaxLen)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	rep.Start = r.Start
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		b, eof, err := e.readBatch(r, &rep)
		if err != nil {
			return rep, err
		}
		if err := e.apply(b, &rep); err != nil {
			return rep, err
		}
		rep.Bans = len(e.bans)
		if eof {
			return rep, nil
		}
	}
}

// batch is what a batch of lines changes.
type batch struct {
	add  map[netip.Addr]time.Time // new ends
	lift map[netip.Addr]bool
	read logtail.Cursor // where its lines end
}

// readBatch reads up to MaxBatch lines and decides each.
func (e *Engine) readBatch(r *logtail.Reader, rep *Report) (batch, bool, error) {
	b := batch{add: map[netip.Addr]time.Time{}, lift: map[netip.Addr]bool{}, read: r.Cursor()}
	now := e.cfg.Now()
	for n := 0; n < e.cfg.MaxBatch; n++ {
		line, next, err := r.Next()
		switch {
		case err == io.EOF:
			if next.Skip {
				b.read = next
			}
			return b, true, nil
		case errors.Is(err, logtail.ErrSkipped):
			rep.Lines++
			rep.Skipped.Bad++
			b.read = next
			continue
		case err != nil:
			return b, false, err
		}
		rep.Lines++
		b.read = next
		d := e.Decide(line, now)
		d.count(rep)
		switch d.Verdict {
		case VerdictBan:
			if old, ok := b.add[d.Addr]; ok && !later(d.End, old) {
				continue
			}
			if !b.lift[d.Addr] {
				if old, ok := e.bans[d.Addr]; ok && !later(d.End, old) {
					rep.Skipped.Known++
					continue
				}
			}
			delete(b.lift, d.Addr)
			b.add[d.Addr] = d.End
		case VerdictLift:
			_, banned := e.bans[d.Addr]
			if _, pending := b.add[d.Addr]; !banned && !pending {
				rep.Skipped.NotIn++
				continue
			}
			delete(b.add, d.Addr)
			if banned {
				b.lift[d.Addr] = true
			}
		}
	}
	return b, false, nil
}

// later reports whether a ban ending at a ends after one ending at b
// (the zero time, never, is the latest).
func later(a, b time.Time) bool {
	switch {
	case b.IsZero():
		return false
	case a.IsZero():
		return true
	}
	return a.After(b)
}

// apply writes a batch down: first the state file with its changes,
// then the kernel (lifts, then additions, each one transaction), then the
// cursor. So a service killed at any point finds, at its next Start, a
// state at least as new as the kernel (Start makes the kernel follow it)
// and a cursor no further than both (the lines after it are read again).
func (e *Engine) apply(b batch, rep *Report) error {
	now := e.cfg.Now()
	var lift, replace []netip.Addr
	var els []nftset.Element
	for a := range b.lift {
		lift = append(lift, a)
		delete(e.bans, a)
	}
	for a, end := range b.add {
		els = append(els, element(a, end, now))
		if _, ok := e.bans[a]; ok {
			replace = append(replace, a)
		}
		e.bans[a] = end
	}
	if len(lift) > 0 || len(els) > 0 || e.cur == nil {
		for a, end := range e.bans {
			if !Live(end, now) {
				delete(e.bans, a)
			}
		}
		if err := SaveState(StatePath(e.cfg.State), e.bans, now); err != nil {
			return err
		}
	}
	if err := e.k.Delete(lift); err != nil {
		return err
	}
	rep.Lifted += len(lift)
	if err := e.k.Add(els, replace); err != nil {
		return err
	}
	rep.Added += len(els)
	if e.cur != nil && *e.cur == b.read {
		return nil
	}
	if err := logtail.SaveCursor(e.cfg.State, b.read); err != nil {
		return err
	}
	cur := b.read
	e.cur = &cur
	return nil
}

// Verdict is what a line does.
type Verdict int

// Verdicts of Decide.
const (
	VerdictNone Verdict = iota // nothing: see Decision.Skip
	VerdictBan                 // ban Addr until End
	VerdictLift                // lift Addr's ban
)

// Decision is what one line of the log does, and why.
type Decision struct {
	Verdict Verdict
	Addr    netip.Addr
	End     time.Time // VerdictBan: when the ban ends; zero: never
	Jail    string    // VerdictBan: the jail whose ban it is
	Skip    string    // VerdictNone: the Skipped field that counts it
}

func (d Decision) count(rep *Report) {
	s := &rep.Skipped
	switch d.Skip {
	case "bad":
		s.Bad++
	case "no_jail":
		s.NoJail++
	case "filter":
		s.Filter++
	case "ignored":
		s.Ignored++
	case "refused":
		s.Refused++
	case "expired":
		s.Expired++
	}
}

// Decide says what one line of the log (without its newline) does at
// now, as the receiving jails would take it.
func (e *Engine) Decide(line []byte, now time.Time) Decision {
	return decide(&e.cfg, line, now)
}

func decide(cfg *Config, line []byte, now time.Time) Decision {
	l, err := logline.Parse(line)
	if err != nil {
		return Decision{Skip: "bad"}
	}
	a := l.Record.Addr
	if l.Kind == logline.Unban {
		return Decision{Verdict: VerdictLift, Addr: a}
	}
	var j *Jail
	for i := range cfg.Jails {
		if cfg.Jails[i].Kind == l.Kind {
			j = &cfg.Jails[i]
			break
		}
	}
	switch {
	case j == nil:
		return Decision{Skip: "no_jail"}
	case !j.matches(line, a):
		return Decision{Skip: "filter"}
	}
	for _, p := range j.Ignore {
		if p.Contains(a) {
			return Decision{Skip: "ignored"}
		}
	}
	if err := cfg.Policy.Check(a); err != nil {
		// A peer's receiver line can only let through what it can
		// allow: a private address (--allow-private).
		private := cfg.Policy
		private.AllowPrivate = true
		if private.Check(a) != nil || cfg.PeerAllows == nil || !cfg.PeerAllows(l.Peer, a) {
			return Decision{Skip: "refused"}
		}
	}
	d := Decision{Verdict: VerdictBan, Addr: a, Jail: j.Name}
	if j.BanTime > 0 {
		start := l.Time
		if start.After(now) {
			start = now // fail2ban takes a time stamp from the future as now
		}
		d.End = start.Add(j.BanTime).Truncate(time.Second)
		if !d.End.After(now) {
			return Decision{Skip: "expired"}
		}
	}
	return d
}

// String names a verdict, for tests and messages.
func (v Verdict) String() string {
	switch v {
	case VerdictBan:
		return "ban"
	case VerdictLift:
		return "lift"
	}
	return "none"
}
