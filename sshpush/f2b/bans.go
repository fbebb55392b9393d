package f2b

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// Ban is one ban a running jail holds.
type Ban struct {
	Addr netip.Addr
	Jail string
	// Time is when fail2ban banned the address, Unix seconds (for a ban
	// restored from fail2ban's database, when it was first made).
	Time int64
	// BanTime is how long the ban lasts, in seconds, as fail2ban applies
	// it now (the jail's bantime, or the ban's own under
	// bantime.increment); Permanent for a ban that never ends.
	BanTime int64
}

// Permanent is the BanTime of a ban that never ends.
const Permanent = -1

// End returns when the ban ends, Unix seconds, and false for a permanent
// ban.
func (b Ban) End() (int64, bool) {
	if b.BanTime < 0 {
		return 0, false
	}
	return b.Time + b.BanTime, true
}

// Bounds of a ban list: one line per ban, as fail2ban writes it.
const (
	maxBans       = 100000
	maxBanLineLen = 512
)

// ErrTooManyBans is returned for a jail whose ban list is longer than Bans
// reads (100,000 bans, or an answer of 4 MiB). EachBan reads any number.
var ErrTooManyBans = errors.New("f2b: get banip: more bans than banpush reads from one jail")

// Bans lists the bans the running jail holds now, with when each started
// and how long it lasts ('fail2ban-client get JAIL banip --with-time').
// fail2ban writes those times in the server's local time zone, without
// the zone: they are read in this process's (time.Local), which is the
// server's when both run on this host with the same TZ. Banned IDs that
// are not IP addresses (a jail can ban other IDs) are left out.
func (c *Client) Bans(ctx context.Context, jail string) ([]Ban, error) {
	if !ValidJail(jail) {
		return nil, fmt.Errorf("f2b: invalid jail name")
	}
	out, err := c.server(ctx, "get", jail, "banip", "--with-time")
	if err != nil {
		return nil, err
	}
	if len(out) >= maxOutput {
		return nil, ErrTooManyBans
	}
	bans, _, err := ParseBans(out, jail, time.Local)
	return bans, err
}

// EachBan gives fn each ban the running jail holds now, as Bans reads
// them, while fail2ban-client writes the list: however many there are,
// what it holds at once is one line. fn's error stops the list and is
// returned; so is a line of another shape (ScanBans).
func (c *Client) EachBan(ctx context.Context, jail string, fn func(Ban) error) error {
	if !ValidJail(jail) {
		return fmt.Errorf("f2b: invalid jail name")
	}
	return c.serverStream(ctx, func(r io.Reader) error {
		_, err := ScanBans(r, jail, time.Local, fn)
		return err
	}, "get", jail, "banip", "--with-time")
}

// ActionBan returns the actionban command of one action of the running
// jail ('fail2ban-client get JAIL action ACTION actionban').
func (c *Client) ActionBan(ctx context.Context, jail, action string) (string, error) {
	if !ValidJail(jail) || !ValidJail(action) {
		return "", fmt.Errorf("f2b: invalid jail or action name")
	}
	out, err := c.server(ctx, "get", jail, "action", action, "actionban")
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// PushingJails lists the running jails that carry banpush's push action:
// one named banpush, or one whose actionban runs 'banpush push'
// (Action.Pushes). These are the jails whose bans this host shares.
func (c *Client) PushingJails(ctx context.Context) ([]string, error) {
	jails, err := c.Jails(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, j := range jails {
		acts, err := c.Actions(ctx, j)
		if err != nil {
			return nil, err
		}
		pushes := slices.Contains(acts, "banpush")
		for _, a := range acts {
			if pushes {
				break
			}
			ban, err := c.ActionBan(ctx, j, a)
			if err != nil {
				return nil, err
			}
			pushes = Action{Name: a, Ban: ban}.Pushes()
		}
		if pushes {
			out = append(out, j)
		}
	}
	return out, nil
}

// PushAction is a banpush push action of a running jail (Action.Pushes):
// the jail, and the action's name and actionban command as the server has
// it, the action's arguments in place (<pushargs> of contrib's action).
type PushAction struct {
	Jail string
	Action
}

// PushActions lists the push actions of the running jails, in the order
// of the jails and of their actions. An action whose actionban cannot be
// read (not a command action) is passed over; a server that does not
// answer is an error.
func (c *Client) PushActions(ctx context.Context) ([]PushAction, error) {
	jails, err := c.Jails(ctx)
	if err != nil {
		return nil, err
	}
	var out []PushAction
	for _, j := range jails {
		acts, err := c.Actions(ctx, j)
		if err != nil {
			return nil, err
		}
		for _, a := range acts {
			ban, err := c.ActionBan(ctx, j, a)
			var fe *Error
			switch {
			case errors.As(err, &fe) || errors.Is(err, ErrNoJail):
				continue // no actionban: not banpush's
			case err != nil:
				return nil, err
			}
			if act := (Action{Name: a, Ban: strings.TrimSpace(ban)}); act.Pushes() {
				out = append(out, PushAction{Jail: j, Action: act})
			}
		}
	}
	return out, nil
}

// banTimeLayout is how fail2ban writes times in a ban list (MyTime.time2str).
const banTimeLayout = "2006-01-02 15:04:05"

// ParseBans reads the answer of 'fail2ban-client get JAIL banip
// --with-time': one line per ban,
//
//	ID " \t" START " + " BANTIME " = " END
//
// with START and END as "YYYY-MM-DD HH:MM:SS" in loc, BANTIME in seconds
// (negative: permanent). Empty lines are skipped. A ban whose ID is not an
// IP address (record.ParseAddr) is not returned but counted in skipped; a
// line of any other shape is an error naming its line, and so is a list of
// more than 100,000 bans. Where START is ambiguous in loc (the hour a
// daylight saving change repeats), END decides, else the earlier reading.
func ParseBans(out []byte, jail string, loc *time.Location) (bans []Ban, skipped int, err error) {
	skipped, err = scanBans(bytes.NewReader(out), jail, loc, maxBans, func(b Ban) error {
		bans = append(bans, b)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return bans, skipped, nil
}

// ScanBans reads a ban list from r as ParseBans does, with no bound on the
// number of bans, and gives each to fn as it is read; each line is read
// whole only up to maxBanLineLen bytes. fn's error stops the reading and is
// returned.
func ScanBans(r io.Reader, jail string, loc *time.Location, fn func(Ban) error) (skipped int, err error) {
	return scanBans(r, jail, loc, 0, fn)
}

// scanBans is ScanBans with at most limit bans (0: no bound).
func scanBans(r io.Reader, jail string, loc *time.Location, limit int, fn func(Ban) error) (skipped int, err error) {
	br := bufio.NewReaderSize(r, maxBanLineLen+1)
	n, bans := 0, 0
	for {
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			return skipped, fmt.Errorf("f2b: get banip line %d: line too long", n+1)
		}
		if rerr != nil && rerr != io.EOF {
			return skipped, fmt.Errorf("f2b: get banip: %w", rerr)
		}
		if rerr == io.EOF && len(line) == 0 {
			return skipped, nil
		}
		n++
		if line = bytes.TrimSuffix(line, []byte("\n")); len(line) > 0 {
			if limit > 0 && bans+skipped >= limit {
				return skipped, ErrTooManyBans
			}
			b, ok, err := parseBanLine(line, loc)
			switch {
			case err != nil:
				return skipped, fmt.Errorf("f2b: get banip line %d: %w", n, err)
			case !ok:
				skipped++
			default:
				b.Jail = jail
				bans++
				if err := fn(b); err != nil {
					return skipped, err
				}
			}
		}
		if rerr == io.EOF {
			return skipped, nil
		}
	}
}

// parseBanLine reads one line of a ban list; ok is false for a ban whose
// ID is not an IP address.
func parseBanLine(line []byte, loc *time.Location) (b Ban, ok bool, err error) {
	if len(line) > maxBanLineLen {
		return Ban{}, false, errors.New("line too long")
	}
	s := string(line)
	// The ID comes first and may in principle hold anything: the times
	// follow its last separator.
	i := strings.LastIndex(s, " \t")
	if i < 0 {
		return Ban{}, false, errors.New("no ' \\t' after the banned ID")
	}
	id, rest := s[:i], s[i+2:]
	start, rest, ok1 := strings.Cut(rest, " + ")
	bt, end, ok2 := strings.Cut(rest, " = ")
	if !ok1 || !ok2 {
		return Ban{}, false, errors.New("not 'START + BANTIME = END'")
	}
	banTime, err := strconv.ParseInt(bt, 10, 64)
	if err != nil {
		return Ban{}, false, errors.New("bantime is not an integer")
	}
	if banTime < 0 {
		banTime = Permanent
	}
	if _, err := time.ParseInLocation(banTimeLayout, end, loc); err != nil {
		return Ban{}, false, errors.New("end of ban is not a time")
	}
	t, err := parseLocal(start, end, banTime, loc)
	if err != nil {
		return Ban{}, false, err
	}
	addr, err := record.ParseAddr(id)
	if err != nil {
		return Ban{}, false, nil
	}
	return Ban{Addr: addr, Time: t, BanTime: banTime}, true, nil
}

// parseLocal reads start, a wall-clock time in loc, as Unix seconds. A
// wall-clock time that loc repeats (the hour a daylight saving change
// turns back) has two readings: the one that gives end for a ban of
// banTime seconds wins, else the earlier one.
func parseLocal(start, end string, banTime int64, loc *time.Location) (int64, error) {
	w, err := time.ParseInLocation(banTimeLayout, start, time.UTC)
	if err != nil {
		return 0, errors.New("start of ban is not a time")
	}
	wall := w.Unix()
	// The offsets loc has around that time: a change of offset is never
	// more than a day away from the times it makes ambiguous.
	var cands []int64
	for _, d := range []int64{-86400, 0, 86400} {
		_, off := time.Unix(wall+d, 0).In(loc).Zone()
		t := wall - int64(off)
		if !slices.Contains(cands, t) && time.Unix(t, 0).In(loc).Format(banTimeLayout) == start {
			cands = append(cands, t)
		}
	}
	slices.Sort(cands)
	if len(cands) == 0 {
		return 0, errors.New("start of ban is not a time of the local time zone")
	}
	t := cands[0]
	if len(cands) > 1 && banTime >= 0 {
		for _, c := range cands {
			if time.Unix(c+banTime, 0).In(loc).Format(banTimeLayout) == end {
				t = c
				break
			}
		}
	}
	if t < 1 || t > record.MaxTime {
		return 0, errors.New("start of ban out of range")
	}
	return t, nil
}

// Active returns the bans still running at now (Unix seconds), one per
// address, sorted by address: where an address is banned in several
// jails, the ban that ends last (a permanent one before any other; on a
// tie, the first listed). expired counts the bans that had ended, dups the
// ones left out for a later ban of their address.
func Active(bans []Ban, now int64) (active []Ban, expired, dups int) {
	index := map[netip.Addr]int{}
	for _, b := range bans {
		if end, ok := b.End(); ok && end <= now {
			expired++
			continue
		}
		i, seen := index[b.Addr]
		if !seen {
			index[b.Addr] = len(active)
			active = append(active, b)
			continue
		}
		dups++
		if endsAfter(b, active[i]) {
			active[i] = b
		}
	}
	slices.SortFunc(active, func(a, b Ban) int { return a.Addr.Compare(b.Addr) })
	return active, expired, dups
}

// endsAfter reports whether a ends strictly after b.
func endsAfter(a, b Ban) bool {
	ea, fa := a.End()
	eb, fb := b.End()
	switch {
	case !fa:
		return fb
	case !fb:
		return false
	}
	return ea > eb
}

// Record is the record queued for a ban: its start and bantime as
// fail2ban has them, so that the peer sees how long it has left. A jail
// name the record grammar cannot carry is left out, as push leaves out a
// bad --jail.
func (b Ban) Record() record.Record {
	r := record.Record{Addr: b.Addr, Time: b.Time, BanTime: b.BanTime}
	if record.ValidName(b.Jail) {
		r.Jail = b.Jail
	}
	switch {
	case r.BanTime < 0:
		r.BanTime = record.Permanent
	case r.BanTime > record.MaxBanTime:
		r.BanTime = record.MaxBanTime
	}
	return r
}
