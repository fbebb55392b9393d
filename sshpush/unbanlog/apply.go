package unbanlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/logtail"
	"github.com/banpush/banpush/sshpush/record"
)

// DefaultMaxAge is how old an unban line may be and still be applied.
const DefaultMaxAge = time.Hour

// MaxListed bounds Report.Applied; Report.Lifted counts them all.
const MaxListed = 1000

// lockTimeout bounds the wait for another run on the same cursor.
const lockTimeout = 10 * time.Second

// Unbanner lists and lifts bans in the local fail2ban (f2b.Client does).
// EachBan gives fn each ban of the jail, however many it holds.
type Unbanner interface {
	EachBan(ctx context.Context, jail string, fn func(f2b.Ban) error) error
	Unban(ctx context.Context, jail string, addr netip.Addr) (bool, error)
}

// maxPending bounds the unban lines read before fail2ban is asked for the
// bans of their addresses: each such batch reads every jail's ban list
// once, keeping the start of the addresses in the batch only.
const maxPending = 10000

// Config says what to read and where to apply it. Everything in it is
// trusted: it comes from root's command line.
type Config struct {
	Log   string   // the received log, an absolute path; LOG.1 is beside it
	State string   // the cursor file; STATE.lock beside it serializes runs
	Jails []string // the local jails to lift each ban in, valid fail2ban jail names
	// JailsFunc, when Jails is empty, gives them: it is called once, when
	// the first unban is to be applied, so that a run with nothing to
	// apply asks fail2ban nothing (the path unit runs at every write to
	// the log, ban lines included). Its errors are returned as they are.
	JailsFunc func(context.Context) ([]string, error)
	// Policy says which addresses may be unbanned, whatever peer's: the
	// private ones only with AllowPrivate (apply-unbans --allow-private).
	Policy record.Policy
	// Receivers, when set, gives the receiver lines of the log that let
	// peers unban (see Receiver): an unban whose address Policy refuses is
	// applied if the policy of a line of its peer takes it, as the
	// receiver did when it wrote it. It is called at most once a run, at
	// the first unban Policy refuses.
	Receivers func() []Receiver
	// MaxAge: lines whose timestamp is further than this from now are
	// passed over (an unban issued long ago could lift a newer ban of
	// the same address). Zero or less: no bound.
	MaxAge time.Duration
	Now    func() time.Time

	receivers []Receiver // what Receivers gave
}

// Receiver is what one receiver line of the log (an authorized_keys
// line of the receiving account, whose forced command writes the log and
// has --allow-unban) says of the unbans it lets through: whose (Peer, a
// record.PeerID, or any peer's with AnyPeer: a cert-authority line) and
// which addresses (Policy: --allow-private, --ignore).
type Receiver struct {
	Peer    string
	AnyPeer bool
	Policy  record.Policy
}

// Applied is one unban applied.
type Applied struct {
	Addr   netip.Addr `json:"addr"`
	Peer   string     `json:"peer"`
	Stamp  time.Time  `json:"stamp"`
	Jail   string     `json:"jail"`   // the local jail
	Lifted bool       `json:"lifted"` // it was banned there
}

// Report is what one run read and did.
type Report struct {
	Start   logtail.Start `json:"start"`
	Unbans  int           `json:"unbans"`  // unban lines read
	Applied []Applied     `json:"applied"` // the first MaxListed (address, jail) pairs applied
	Calls   int           `json:"calls"`   // fail2ban unbans run
	Lifted  int           `json:"lifted"`  // of them, bans that were lifted
	Skipped Skipped       `json:"skipped"`
	Other   int           `json:"other"` // lines of other kinds (ban, report, quorum)
	Held    int           `json:"held"`  // unbans held for this host's settings after the run, to be tried again (see Held)
}

// Skipped counts lines passed over, by reason.
type Skipped struct {
	Bad       int `json:"bad"`        // malformed, too long, not printable, cut short
	Old       int `json:"old"`        // timestamp beyond MaxAge
	NotBanned int `json:"not_banned"` // (address, jail) pairs with no ban to lift
	Newer     int `json:"newer"`      // (address, jail) pairs banned again after the unban: that ban stays
	Refused   int `json:"refused"`    // address that no setting lets through (loopback, reserved, ...), or past MaxHeld
	Duplicate int `json:"duplicate"`  // address already applied in this run
	Held      int `json:"held"`       // private address this host's settings refuse: held, and tried again (see Held)
}

// Apply reads the unban lines written since the cursor and lifts each
// address's ban in every jail of cfg.Jails, then moves the cursor past
// them. The cursor moves only past lines whose unbans succeeded: on an
// error (fail2ban not running, say), it is saved before the line that
// failed, and the error returned with the report so far. The unbans held
// for this host's settings (see Held) are tried first; those the settings
// still refuse, and the new ones, are held again.
//
// Lines are read in batches of at most maxPending unbans to apply; for
// each batch, every jail's ban list is read once (Unbanner.EachBan), as
// long as it is, for the start of the bans of the batch's addresses.
func Apply(ctx context.Context, cfg Config, u Unbanner) (Report, error) {
	var rep Report
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkJails(cfg.Jails); err != nil {
		return rep, err
	}
	lock, err := logtail.LockCursor(ctx, cfg.State, lockTimeout)
	if err != nil {
		return rep, err
	}
	defer lock.Close()

	cur, err := logtail.LoadCursor(cfg.State)
	if err != nil {
		return rep, err
	}
	r, err := logtail.Open(cfg.Log, cur, logline.MaxLen)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	rep.Start = r.Start

	held, err := loadHeld(cfg.State)
	if err != nil {
		return rep, err
	}
	a := &applier{cfg: &cfg, u: u, r: r, rep: &rep, cur: cur, held: held, heldBefore: slices.Clone(held),
		now: cfg.Now(), seen: map[netip.Addr]bool{}}
	a.done = r.Cursor()
	a.start = a.done
	if a.held, err = cfg.retryHeld(ctx, u, a.held, a.now, a.seen, &rep); err != nil {
		return rep, errors.Join(err, a.save())
	}
	for {
		pending, read, eof, err := a.readBatch(ctx)
		if err != nil {
			return rep, errors.Join(err, a.save())
		}
		if len(pending) > 0 {
			n, err := applyBatch(ctx, &cfg, u, pending, &rep)
			if n > 0 {
				a.done = pending[n-1].next
			}
			if err != nil {
				return rep, errors.Join(err, a.save())
			}
		}
		a.done = read
		if eof {
			return rep, a.save()
		}
	}
}

// applier is one run of Apply.
type applier struct {
	cfg              *Config
	u                Unbanner
	r                *logtail.Reader
	rep              *Report
	cur              *logtail.Cursor // as loaded: nil for a first run
	held, heldBefore []Held
	done, start      logtail.Cursor // where the lines applied so far end; where the run began
	now              time.Time
	seen             map[netip.Addr]bool
}

// save writes what the run did: the held unbans, then the cursor.
func (a *applier) save() error {
	a.rep.Held = len(a.held)
	// Held before the cursor moves past the lines they come from: a crash
	// between the two reads those lines again, and holds them once.
	if !slices.Equal(a.held, a.heldBefore) {
		if err := saveHeld(a.cfg.State, a.held); err != nil {
			return err
		}
	}
	if a.done == a.start || a.cur != nil && *a.cur == a.done {
		return nil // no progress: nothing to write
	}
	return logtail.SaveCursor(a.cfg.State, a.done)
}

// readBatch reads up to maxPending unbans to apply, holding or passing
// over the others; read is where the lines read end, eof whether the log
// has no more.
func (a *applier) readBatch(ctx context.Context) (pending []pendingUnban, read logtail.Cursor, eof bool, err error) {
	read = a.done
	for len(pending) < maxPending && !eof {
		line, next, err := a.r.Next()
		switch {
		case err == io.EOF:
			eof = true
			if next.Skip {
				// Inside an unfinished long line: read once.
				read = next
			}
			continue
		case errors.Is(err, logtail.ErrSkipped):
			a.rep.Skipped.Bad++
			read = next
			continue
		case err != nil:
			return nil, read, eof, err
		}
		before := read
		read = next
		ub, err := Parse(line)
		switch {
		case errors.Is(err, ErrOtherKind):
			a.rep.Other++
		case err != nil:
			a.rep.Skipped.Bad++
		default:
			a.rep.Unbans++
			if !a.take(ub) {
				continue
			}
			if len(pending) == 0 {
				// The jails are asked for at the first unban to apply:
				// a server that does not answer is found before more
				// is read.
				if _, err := a.cfg.jails(ctx); err != nil {
					a.done = before // the lines before it are done
					return nil, read, eof, err
				}
			}
			a.seen[ub.Addr] = true
			pending = append(pending, pendingUnban{ub, next})
		}
	}
	return pending, read, eof, nil
}

// take decides an unban line: true to apply it now; an unban this host's
// settings refuse for now is held for the next runs.
func (a *applier) take(ub Unban) bool {
	v := a.cfg.decide(ub, a.now, a.seen, a.rep)
	if v == verdictHold {
		a.rep.Skipped.Held++
		var dropped bool
		if a.held, dropped = hold(a.held, Held{Addr: ub.Addr, Peer: ub.Peer, Stamp: ub.Stamp}); dropped {
			a.rep.Skipped.Refused++ // past MaxHeld: the oldest goes for good
		}
	}
	return v == verdictApply
}

// pendingUnban is an unban line to apply, and where its line ends.
type pendingUnban struct {
	ub   Unban
	next logtail.Cursor
}

// checkJails refuses a jail name fail2ban could not have made, or one
// fail2ban-client would take for an option.
func checkJails(jails []string) error {
	for _, j := range jails {
		if !f2b.ValidJail(j) || j[0] == '-' {
			return fmt.Errorf("unbanlog: invalid jail name")
		}
	}
	return nil
}

// jails returns cfg.Jails, asking JailsFunc for them the first time if
// they are not given.
func (cfg *Config) jails(ctx context.Context) ([]string, error) {
	if len(cfg.Jails) > 0 || cfg.JailsFunc == nil {
		return cfg.Jails, nil
	}
	js, err := cfg.JailsFunc(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkJails(js); err != nil {
		return nil, err
	}
	cfg.Jails, cfg.JailsFunc = js, nil
	return js, nil
}

// verdict is what becomes of an unban.
type verdict int

const (
	verdictApply  verdict = iota
	verdictPassed         // passed over for good, and counted
	verdictHold           // held for this host's settings (see Held)
)

// decide says what becomes of an unban, and counts why it is passed over:
// too old (or from the future); an address this host's settings refuse,
// held instead if it is private alone (holdable); or one applied already
// in this run.
func (cfg *Config) decide(ub Unban, now time.Time, seen map[netip.Addr]bool, rep *Report) verdict {
	age := now.Sub(ub.Stamp)
	switch {
	case cfg.MaxAge > 0 && (age > cfg.MaxAge || -age > cfg.MaxAge):
		rep.Skipped.Old++
	case !cfg.allowed(ub) && holdable(ub.Addr):
		return verdictHold
	case !cfg.allowed(ub):
		rep.Skipped.Refused++
	case seen[ub.Addr]:
		rep.Skipped.Duplicate++
	default:
		return verdictApply
	}
	return verdictPassed
}

// allowed reports whether this host's settings take the unban's address:
// Policy, or the policy of a receiver line of its peer.
func (cfg *Config) allowed(ub Unban) bool {
	if cfg.Policy.Check(ub.Addr) == nil {
		return true
	}
	if cfg.Receivers != nil {
		cfg.receivers, cfg.Receivers = cfg.Receivers(), nil
	}
	id := record.PeerID(ub.Peer)
	for i := range cfg.receivers {
		r := &cfg.receivers[i]
		if (r.AnyPeer || r.Peer == id) && r.Policy.Check(ub.Addr) == nil {
			return true
		}
	}
	return false
}

// retryHeld tries the held unbans again: those the settings now take are
// applied (in one batch), those past MaxAge are dropped, the others are
// held again; so are those not applied when an error stops the batch.
func (cfg *Config) retryHeld(ctx context.Context, u Unbanner, held []Held, now time.Time, seen map[netip.Addr]bool, rep *Report) ([]Held, error) {
	var keep []Held
	var pending []pendingUnban
	for _, h := range held {
		ub := Unban{Stamp: h.Stamp, Addr: h.Addr, Peer: h.Peer}
		switch cfg.decide(ub, now, seen, rep) {
		case verdictApply:
			seen[ub.Addr] = true
			pending = append(pending, pendingUnban{ub: ub})
		case verdictHold:
			keep = append(keep, h)
		}
	}
	if len(pending) == 0 {
		return keep, nil
	}
	n, err := applyBatch(ctx, cfg, u, pending, rep)
	for _, p := range pending[n:] {
		keep = append(keep, Held{Addr: p.ub.Addr, Peer: p.ub.Peer, Stamp: p.ub.Stamp})
	}
	return keep, err
}

// applyBatch lifts the addresses of pending in every jail where they are
// banned, unless that ban started after the unban was written: a ban made
// since (a fresh detection after the unban window) is not the one taken
// back. It returns how many of pending, from the first, were applied.
func applyBatch(ctx context.Context, cfg *Config, u Unbanner, pending []pendingUnban, rep *Report) (int, error) {
	jails, err := cfg.jails(ctx)
	if err != nil {
		return 0, err
	}
	want := make(map[netip.Addr]bool, len(pending))
	for _, p := range pending {
		want[p.ub.Addr] = true
	}
	starts := make(map[string]map[netip.Addr]int64, len(jails)) // jail -> address -> start, Unix seconds
	for _, jail := range jails {
		m := map[netip.Addr]int64{}
		err := u.EachBan(ctx, jail, func(b f2b.Ban) error {
			if want[b.Addr] {
				m[b.Addr] = b.Time
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("unbanlog: bans of jail %s: %w", jail, err)
		}
		starts[jail] = m
	}
	for i, p := range pending {
		ub := p.ub
		for _, jail := range jails {
			start, banned := starts[jail][ub.Addr]
			switch {
			case !banned:
				rep.Skipped.NotBanned++
				continue
			case start > ub.Stamp.Unix():
				rep.Skipped.Newer++
				continue
			}
			lifted, err := u.Unban(ctx, jail, ub.Addr)
			if err != nil {
				return i, fmt.Errorf("unbanlog: unban in jail %s: %w", jail, err)
			}
			rep.Calls++
			if lifted {
				rep.Lifted++
			}
			if len(rep.Applied) < MaxListed {
				rep.Applied = append(rep.Applied, Applied{Addr: ub.Addr, Peer: ub.Peer, Stamp: ub.Stamp, Jail: jail, Lifted: lifted})
			}
		}
	}
	return len(pending), nil
}
