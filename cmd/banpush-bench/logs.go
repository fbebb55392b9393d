package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// banLog follows one peer's receive log, reading only what was appended
// since the last look, and remembers every address logged.
type banLog struct {
	path    string
	off     int64
	partial []byte
	seen    map[string]bool
}

func newBanLog(path string) *banLog { return &banLog{path: path, seen: map[string]bool{}} }

// update reads the lines appended since the last call.
func (l *banLog) update() error {
	b, err := readFrom(l.path, l.off)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	l.off += int64(len(b))
	if len(l.partial) > 0 {
		b = append(l.partial, b...)
		l.partial = nil
	}
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte{'\n'})
		if !ok {
			l.partial = append([]byte(nil), b...)
			break
		}
		b = rest
		// "STAMP banpush: ban ADDR peer=... ..."
		f := bytes.Fields(line)
		if len(f) >= 4 && string(f[1]) == "banpush:" && string(f[2]) == "ban" {
			l.seen[string(f[3])] = true
		}
	}
	return nil
}

// waitLogged waits until the logs of peers each have every address in
// addrs, and returns the moment it saw the last one. It reads a log again
// when watch says its directory changed, and every log still missing an
// address every poll (and every poll, without a watch).
func waitLogged(ctx context.Context, peers []*peer, logs map[*peer]*banLog, watch *logWatch, addrs []string, poll, timeout time.Duration) (time.Time, error) {
	next := make([]int, len(peers)) // per peer: addrs[:next] are all logged
	deadline := time.Now().Add(timeout)
	var changed map[*banLog]bool
	all := true
	for {
		done := true
		for i, p := range peers {
			if next[i] == len(addrs) {
				continue
			}
			l := logs[p]
			if all || changed[l] {
				if err := l.update(); err != nil {
					return time.Time{}, err
				}
				for next[i] < len(addrs) && l.seen[addrs[next[i]]] {
					next[i]++
				}
			}
			if next[i] < len(addrs) {
				done = false
			}
		}
		if done {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			missing := 0
			for i := range peers {
				missing += len(addrs) - next[i]
			}
			return time.Time{}, fmt.Errorf("after %s, at least %d (peer, address) pairs not logged: %w", timeout, missing, errTimeout)
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if watch == nil {
			select {
			case <-ctx.Done():
			case <-time.After(poll):
			}
			continue
		}
		var err error
		if changed, all, err = watch.wait(poll); err != nil {
			return time.Time{}, err
		}
	}
}

// addrs hands out distinct documentation addresses (2001:db8::/32), in the
// canonical form receivers log them in.
type addrs struct{ n uint32 }

func (a *addrs) next() string {
	a.n++
	k := a.n
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xbe, 0x5c, 12: byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}).String()
}

func (a *addrs) take(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = a.next()
	}
	return out
}
