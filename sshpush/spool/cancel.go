package spool

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// An unban cancels the bans of its address still queued: the cancels file
// holds, for each address unbanned, the time of its latest unban, and a
// sender does not deliver a ban of that address queued up to then (to any
// peer: Cancels.Cancelled). A ban queued after the unban - a fresh
// detection - is delivered as usual.
//
// The file is replaced whole (written beside, fsynced, renamed) under the
// append lock, so a sender reading it without the lock sees the old or the
// new content. Entries older than cancelRetention are dropped, and at most
// maxCancels are kept (the newest): by then the bans they cancel are far
// past any --max-age a sender uses. A damaged line is dropped.

const (
	cancelsName     = "cancels"
	cancelRetention = 30 * 24 * time.Hour
	maxCancels      = 100000
	maxCancelsBytes = maxCancels * 64
)

// Cancels is the content of the cancels file, as LoadCancels read it.
type Cancels struct {
	upto map[netip.Addr]int64 // address -> Unix nanoseconds of its latest unban
	id   fileID
}

// fileID tells one version of a file from another without reading it.
type fileID struct {
	ino, size int64
	mtime     int64
}

// Cancelled reports whether e is a ban that an unban queued after it
// cancelled.
func (c *Cancels) Cancelled(e Entry) bool {
	if c == nil || e.Kind != Ban {
		return false
	}
	upto, ok := c.upto[e.Record.Addr]
	return ok && e.Queued.UnixNano() <= upto
}

// Len returns the number of addresses with a cancel.
func (c *Cancels) Len() int {
	if c == nil {
		return 0
	}
	return len(c.upto)
}

// LoadCancels reads the cancels file. Given the Cancels it returned
// before, it returns that one again, without reading, if the file has not
// changed since: a sender may call it before every batch.
func (s *Spool) LoadCancels(prev *Cancels) (*Cancels, error) {
	f, err := os.OpenFile(s.path(cancelsName), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return &Cancels{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(st.Ino)
	}
	if prev != nil && prev.upto != nil && prev.id == id {
		return prev, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCancelsBytes))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	c := &Cancels{upto: parseCancels(data), id: id}
	return c, nil
}

// parseCancels parses the lines of the cancels file, dropping the damaged
// ones; of two lines for one address, the later unban counts.
func parseCancels(data []byte) map[netip.Addr]int64 {
	m := map[netip.Addr]int64{}
	for line := range bytes.Lines(data) {
		if len(m) >= maxCancels {
			break
		}
		a, n, ok := bytes.Cut(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
		if !ok {
			continue
		}
		addr, err := record.ParseAddr(string(a))
		nanos, ok := parseNanos(n)
		if err != nil || !ok {
			continue
		}
		m[addr] = max(m[addr], nanos)
	}
	return m
}

// cancel records that addrs were unbanned at nanos.
func (s *Spool) cancel(ctx context.Context, addrs []netip.Addr, nanos int64) error {
	lf, err := s.lockAppend(ctx)
	if err != nil {
		return err
	}
	defer lf.Close() // closing the last descriptor releases the flock

	c, err := s.LoadCancels(nil)
	if err != nil {
		return err
	}
	m := c.upto
	if m == nil {
		m = map[netip.Addr]int64{}
	}
	for _, a := range addrs {
		m[a] = max(m[a], nanos)
	}
	if err := fsutil.WriteAtomic(s.path(cancelsName), marshalCancels(m, nanos-int64(cancelRetention)), 0o600); err != nil {
		return fmt.Errorf("spool: saving cancels: %w", err)
	}
	return nil
}

// marshalCancels writes the entries newer than oldest, at most maxCancels
// of them (the newest), sorted by address.
func marshalCancels(m map[netip.Addr]int64, oldest int64) []byte {
	type entry struct {
		addr  netip.Addr
		nanos int64
	}
	var es []entry
	for a, n := range m {
		if n > oldest {
			es = append(es, entry{a, n})
		}
	}
	if len(es) > maxCancels {
		slices.SortFunc(es, func(x, y entry) int { return cmp.Compare(y.nanos, x.nanos) })
		es = es[:maxCancels]
	}
	slices.SortFunc(es, func(x, y entry) int { return x.addr.Compare(y.addr) })
	var b []byte
	for _, e := range es {
		b = e.addr.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.nanos, 10)
		b = append(b, '\n')
	}
	return b
}
