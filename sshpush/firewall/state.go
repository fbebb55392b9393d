package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// The state file (STATE.bans, beside the cursor) holds the bans the fast
// path has put into the kernel, so that a restart, or a boot that emptied
// the kernel, puts them back in one batch without reading the log again.
// It is a text file of one ban a line,
//
//	ADDRESS EXPIRY
//
// the address in canonical form and EXPIRY the ban's end in Unix seconds,
// or "-" for a permanent ban, after a first line that names the format.
// It is replaced atomically after each batch, before the cursor moves
// past the lines the batch came from.

// stateHeader is the state file's first line.
const stateHeader = "# banpush firewall bans v1: ADDRESS EXPIRY (Unix seconds, - permanent)"

// Bounds of the state file: far more bans than any jail holds, and the
// longest line one writes.
const (
	MaxBans      = 1_000_000
	maxStateLine = 64
)

// ErrDamagedState is returned for a state file that is not one this
// package writes. Its text never contains the file's content.
var ErrDamagedState = errors.New("firewall: state file damaged (remove it: the log is read again from its start)")

// Bans are the bans in force: each address and when its ban ends (the
// zero time: never).
type Bans map[netip.Addr]time.Time

// Live reports whether a ban ending at end is in force at now.
func Live(end, now time.Time) bool { return end.IsZero() || end.After(now) }

// AppendState appends bans in the state file's form, sorted, leaving out
// those not in force at now.
func AppendState(b []byte, bans Bans, now time.Time) []byte {
	b = append(b, stateHeader...)
	b = append(b, '\n')
	addrs := make([]netip.Addr, 0, len(bans))
	for a, end := range bans {
		if Live(end, now) {
			addrs = append(addrs, a)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		b = a.AppendTo(b)
		b = append(b, ' ')
		if end := bans[a]; end.IsZero() {
			b = append(b, '-')
		} else {
			b = strconv.AppendInt(b, end.Unix(), 10)
		}
		b = append(b, '\n')
	}
	return b
}

// ParseState reads a state file's content. It accepts exactly what
// AppendState writes (any order of lines): anything else, a duplicate
// address or more than MaxBans, is ErrDamagedState.
func ParseState(r io.Reader) (Bans, error) {
	br := bufio.NewReaderSize(r, 4096)
	bans := Bans{}
	first := true
	for {
		line, err := readLine(br)
		if err == io.EOF {
			if first {
				return nil, ErrDamagedState
			}
			return bans, nil
		}
		if err != nil {
			return nil, err
		}
		if first {
			if string(line) != stateHeader {
				return nil, ErrDamagedState
			}
			first = false
			continue
		}
		a, end, ok := parseBan(line)
		if !ok || len(bans) >= MaxBans {
			return nil, ErrDamagedState
		}
		if _, dup := bans[a]; dup {
			return nil, ErrDamagedState
		}
		bans[a] = end
	}
}

// readLine reads one line ending with a newline, of at most maxStateLine
// bytes besides the header's length; a longer one, or a last line without
// its newline, is ErrDamagedState.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == io.EOF && len(line) == 0:
		return nil, io.EOF
	case err == bufio.ErrBufferFull, err == io.EOF:
		return nil, ErrDamagedState
	case err != nil:
		return nil, fmt.Errorf("firewall: state file: %w", err)
	}
	line = line[:len(line)-1]
	if len(line) > max(maxStateLine, len(stateHeader)) {
		return nil, ErrDamagedState
	}
	return line, nil
}

func parseBan(line []byte) (netip.Addr, time.Time, bool) {
	as, es, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return netip.Addr{}, time.Time{}, false
	}
	a, err := record.ParseAddr(string(as))
	if err != nil || a.String() != string(as) {
		return netip.Addr{}, time.Time{}, false
	}
	if string(es) == "-" {
		return a, time.Time{}, true
	}
	n, err := strconv.ParseInt(string(es), 10, 64)
	if err != nil || n < 1 || n > record.MaxTime || strconv.FormatInt(n, 10) != string(es) {
		return netip.Addr{}, time.Time{}, false
	}
	return a, time.Unix(n, 0), true
}

// maxStateFile bounds what is read of the state file.
const maxStateFile = MaxBans * maxStateLine

// LoadState reads the state file at path; a missing one is (nil, nil).
// It is opened without following a symbolic link, and must be a regular
// file.
func LoadState(path string) (Bans, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("firewall: state file %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("firewall: state file %s: not a regular file", path)
	}
	bans, err := ParseState(io.LimitReader(f, maxStateFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, path)
	}
	return bans, nil
}

// SaveState replaces the state file at path atomically (0600).
func SaveState(path string, bans Bans, now time.Time) error {
	if err := fsutil.WriteAtomic(path, AppendState(nil, bans, now), 0o600); err != nil {
		return fmt.Errorf("firewall: state file: %w", err)
	}
	return nil
}
