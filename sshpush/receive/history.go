package receive

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The receiver keeps a short history of what it wrote about each address
// in LOG.history: one line per ban or quorum line, "ADDRESS UNIXSECONDS
// ban", and per unban line, "ADDRESS UNIXSECONDS unban", appended under
// the lock of LOG.state once the log is written, without an fsync. It
// answers one question when an unban arrives: has the address a ban here
// for the unban to lift, that is a ban line written less than maxBanAge
// ago and no unban since? Only then does the unban make the other peers'
// bans of the address stale (unban.go): an unban of an address that was
// never banned here holds back no other peer's ban of it.
//
// When an append would take the file past maxHistoryBytes, it becomes
// LOG.history.1 (replacing the one before) and a new one is begun: the
// history holds at least the last maxHistoryBytes of lines, and reading it
// costs at most about twice that. A ban that has left it counts as none: a
// best effort, like the missing fsync, which at worst lets another peer's
// ban of the address in within the unban window.

const (
	maxHistoryBytes = 2 << 20
	// maxBanAge is how long after its ban line an address counts as
	// banned here: longer than the receiving jails' bantime in contrib
	// (1 hour), so that an unban within it has something to lift.
	maxBanAge = 24 * time.Hour

	historyBan   = "ban"
	historyUnban = "unban"
)

// appendEvent appends one line of the history to b.
func appendEvent(b []byte, addr netip.Addr, at int64, kind string) []byte {
	b = addr.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendInt(b, at, 10)
	b = append(b, ' ')
	b = append(b, kind...)
	return append(b, '\n')
}

// appendHistory appends lines to LOG.history, starting a new one first if
// they would take it past maxHistoryBytes. The caller holds the state lock.
func appendHistory(logPath string, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	path := logPath + ".history"
	f, err := openHistory(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() > 0 && fi.Size()+int64(len(lines)) > maxHistoryBytes {
		f.Close()
		if err := os.Rename(path, path+".1"); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		if f, err = openHistory(path); err != nil {
			return err
		}
	}
	defer f.Close()
	if _, err := f.Write(lines); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// openHistory opens LOG.history for appending, 0600, refusing a link or
// anything but a regular file.
func openHistory(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening history: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("opening history: not a regular file")
	}
	return f, nil
}

// bannedHere says, for each of addrs, whether the history shows a ban of
// it less than maxBanAge before now with no unban after it. A damaged
// line is passed over; a history that cannot be read at all is an error.
func bannedHere(logPath string, addrs []netip.Addr, now time.Time) (map[netip.Addr]bool, error) {
	want := make(map[string]netip.Addr, len(addrs))
	for _, a := range addrs {
		want[a.String()] = a
	}
	type event struct {
		at  int64
		ban bool
	}
	last := map[netip.Addr]event{}
	for _, name := range []string{logPath + ".history.1", logPath + ".history"} {
		// A batch of events may take the file just past the bound.
		data, err := readMemory(name, "history", maxHistoryBytes+1<<20)
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			a, rest, _ := bytes.Cut(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
			addr, ok := want[string(a)]
			if !ok {
				continue
			}
			t, kind, _ := bytes.Cut(rest, []byte{' '})
			at, err := strconv.ParseInt(string(t), 10, 64)
			if err != nil || string(kind) != historyBan && string(kind) != historyUnban {
				continue
			}
			last[addr] = event{at, string(kind) == historyBan} // the latest line decides
		}
	}
	oldest := now.Add(-maxBanAge).Unix()
	out := make(map[netip.Addr]bool, len(last))
	for a, e := range last {
		out[a] = e.ban && e.at >= oldest
	}
	return out, nil
}
