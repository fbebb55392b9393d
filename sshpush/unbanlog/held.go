package unbanlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// An unban line whose address this host's settings refuse for being
// private (or CGNAT) alone - its Policy and the policy of every receiver
// line of its peer - is not passed over for good: the receiver that wrote
// it had a policy that took it, or the settings changed since. It is held
// in STATE.held, beside the cursor, and tried again at every run with the
// settings of the day, until it is applied or older than MaxAge. So an
// unban is not lost to a setting fixed later (--allow-private in the
// peer's authorized_keys line, or for apply-unbans). Any other refused
// address (loopback, reserved, ...) no setting allows: it is passed over.

// Held is an unban held for this host's settings.
type Held struct {
	Addr  netip.Addr `json:"addr"`
	Peer  string     `json:"peer"`
	Stamp time.Time  `json:"stamp"`
}

// MaxHeld bounds the unbans held; past it, the oldest is passed over.
const MaxHeld = 1000

// maxHeldFile bounds what is read of STATE.held.
const maxHeldFile = 256 << 10

func heldPath(state string) string { return state + ".held" }

// holdable reports whether a setting could let an address through: one
// the policy refuses for being private or CGNAT alone.
func holdable(a netip.Addr) bool {
	p := record.Policy{AllowPrivate: true}
	return p.Check(a) == nil
}

// loadHeld reads STATE.held; a missing file holds nothing. It is read as
// the cursor is, without following a link, and every entry is checked.
func loadHeld(state string) ([]Held, error) {
	path := heldPath(state)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("unbanlog: held unbans %s: is a symbolic link", path)
	case err != nil:
		return nil, fmt.Errorf("unbanlog: held unbans %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("unbanlog: held unbans %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHeldFile+1))
	if err != nil {
		return nil, fmt.Errorf("unbanlog: held unbans %s: %w", path, err)
	}
	var held []Held
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if len(data) > maxHeldFile || dec.Decode(&held) != nil || len(held) > MaxHeld {
		return nil, fmt.Errorf("unbanlog: held unbans %s: damaged (remove it to drop them)", path)
	}
	for _, h := range held {
		if !h.Addr.IsValid() || h.Addr.Zone() != "" || h.Addr.Is4In6() || !record.ValidName(h.Peer) || h.Stamp.IsZero() {
			return nil, fmt.Errorf("unbanlog: held unbans %s: damaged (remove it to drop them)", path)
		}
	}
	return held, nil
}

// saveHeld replaces STATE.held (0600) with held, or removes it when held
// is empty.
func saveHeld(state string, held []Held) error {
	path := heldPath(state)
	if len(held) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("unbanlog: held unbans: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(held)
	if err != nil {
		return err
	}
	if err := fsutil.WriteAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("unbanlog: held unbans: %w", err)
	}
	return nil
}

// hold adds an unban to held: one of the same address and peer is kept
// once, with the later time (its unban covers the earlier's bans); past
// MaxHeld the oldest goes, and hold reports it.
func hold(held []Held, h Held) (_ []Held, dropped bool) {
	for i, o := range held {
		if o.Addr == h.Addr && record.PeerID(o.Peer) == record.PeerID(h.Peer) {
			if h.Stamp.After(o.Stamp) {
				held[i] = h
			}
			return held, false
		}
	}
	held = append(held, h)
	if len(held) <= MaxHeld {
		return held, false
	}
	oldest := 0
	for i, o := range held {
		if o.Stamp.Before(held[oldest].Stamp) {
			oldest = i
		}
	}
	return append(held[:oldest], held[oldest+1:]...), true
}
