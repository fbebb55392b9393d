// Package f2blog reads the failures fail2ban finds from fail2ban's own
// log: the "Found" line each jail's filter writes, at INFO, for every
// failure that passed ignoreip (fail2ban 1.0.2, server/filter.py,
// processLineAndAdd):
//
//	2026-12-07 07:00:00,123 fail2ban.filter         [1234]: INFO    [sshd] Found 203.0.113.7 - 2026-12-07 07:00:00
//
// ParseFound reads one such line; a Follower reads the failures of chosen
// jails appended to the log since a cursor, across logrotate's rotation
// (package logtail), in batches it moves the cursor past only when the
// caller has handed them on: a crash reads them again, never loses them.
//
// Why the log, and not a jail action that reports. Checked against
// fail2ban 1.0.2 (TestFollowFail2ban runs it and logs its figures):
//   - An action runs at a ban, not at a failure: a jail with maxretry N
//     runs actionban once for N failures, and the failures of an address
//     it has banned already run no action at all (actions.py, __checkBan:
//     at most an "already banned" line, at DEBUG within 3 s of the ban,
//     which the INFO log does not show, else at NOTICE). The log has a
//     Found line for each of them, and fail2ban counts each ("Total
//     failed"): in the test, 6 failures of one address with maxretry 3
//     are 6 Found lines, 1 Ban line and 1 run of actionban.
//   - Every shell command of every action of every jail runs under one
//     global lock (action.py, _cmd_lock), a process each: a reporting
//     action would delay every ban and unban of the host. Reading the log
//     costs fail2ban nothing.
//   - The Found line is written as the filter reads the failure, before
//     any ban, with the failure's own time after " - ": in the test, a
//     median of 0.35 to 0.4 s (at most 0.55 s) after the failure was
//     written, with the polling backend.
//   - Reading is cheap: ParseFound takes about 1.3 us a Found line and
//     0.12 us another line, and a Follower reads about 1 million lines a
//     second (one in ten a failure), on a 2-CPU virtual machine
//     (BenchmarkParseFound, BenchmarkFollowerRead).
//
// What it trusts: its Config, and that the log is fail2ban's (root's, in a
// directory of root's). What it does not trust: the lines, parts of which
// come from whoever caused the failure (a filter's <F-ID> can put any text
// after "Found"). A line is a failure only if it has exactly the form
// above, whole (fail2ban's default log format, without logtarget options
// such as padding=0 or format=), in printable ASCII, within MaxLine bytes,
// with a valid jail name, an address that parses back to the same text
// (no zone, no IPv4-mapped form, which fail2ban never writes: it unmaps
// them) and a valid time. A jail whose filter captures an <F-ID> instead
// of <HOST> or <ADDR> can have fail2ban log any address as found: follow
// only jails that capture addresses.
package f2blog

import (
	"net/netip"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
)

// MaxLine bounds the lines of fail2ban's log that are read: a Found line
// is at most 250 bytes or so (a 100-byte jail name, a 39-byte address);
// fail2ban's other lines can be longer (a warning quotes the line it
// read, up to the source's own length), and those above 4096 bytes are
// passed over without being held whole. The received log's bound
// (logline.MaxLen) is smaller: its lines are banpush's own.
const MaxLine = 4096

// Failure is one failure fail2ban found.
type Failure struct {
	Jail string
	Addr netip.Addr // canonical, unmapped, no zone
	// Time is the failure's time as fail2ban wrote it after " - ", to the
	// second, read in the local time zone (fail2ban writes local time,
	// without a zone).
	Time time.Time
}

// The fixed parts of a Found line, around the stamp, the process id, the
// jail, the address and the failure's time.
const (
	stampShape = "dddd-dd-dd dd:dd:dd,ddd"
	timeShape  = "dddd-dd-dd dd:dd:dd"
	afterStamp = " fail2ban.filter         ["
	afterPID   = "]: INFO    ["
	afterJail  = "] Found "
	beforeTime = " - "
	maxPID     = 10 // digits
)

// ParseFound reads one line of fail2ban's log, without its newline: the
// failure of a Found line, and true; false for every other line (Ban,
// Restore Ban, already banned, Ignore, Unban, any other message) and for
// a line not exactly of the form fail2ban writes (see the package
// documentation). It never panics, and reads at most MaxLine bytes.
func ParseFound(line []byte) (Failure, bool) {
	if len(line) > MaxLine || !printable(line) {
		return Failure{}, false
	}
	rest, ok := cutShape(line, stampShape)
	if !ok {
		return Failure{}, false
	}
	if rest, ok = cutPrefix(rest, afterStamp); !ok {
		return Failure{}, false
	}
	n := 0
	for n < len(rest) && n <= maxPID && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > maxPID || rest[0] == '0' {
		return Failure{}, false
	}
	if rest, ok = cutPrefix(rest[n:], afterPID); !ok {
		return Failure{}, false
	}
	// A valid jail name has no ']' and no space.
	j := 0
	for j < len(rest) && rest[j] != ']' {
		j++
	}
	jail := rest[:j]
	if rest, ok = cutPrefix(rest[j:], afterJail); !ok || !f2b.ValidJail(string(jail)) {
		return Failure{}, false
	}
	// ADDR - TIME, TIME at the end.
	if len(rest) < len(beforeTime)+len(timeShape)+1 {
		return Failure{}, false
	}
	at := len(rest) - len(timeShape)
	if _, ok := cutShape(rest[at:], timeShape); !ok || string(rest[at-len(beforeTime):at]) != beforeTime {
		return Failure{}, false
	}
	text := string(rest[:at-len(beforeTime)])
	addr, err := netip.ParseAddr(text)
	if err != nil || addr.Zone() != "" || addr.Is4In6() || addr.String() != text {
		return Failure{}, false
	}
	// The stamp's ranges (month 13, hour 25) are checked too: ParseFound
	// takes only what fail2ban's time formatting can write.
	if _, err := time.ParseInLocation("2006-01-02 15:04:05,000", string(line[:len(stampShape)]), time.Local); err != nil {
		return Failure{}, false
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", string(rest[at:]), time.Local)
	if err != nil {
		return Failure{}, false
	}
	return Failure{Jail: string(jail), Addr: addr, Time: t}, true
}

// cutShape cuts a prefix of b of the shape s ('d' a digit, any other byte
// itself), and returns what follows.
func cutShape(b []byte, s string) ([]byte, bool) {
	if len(b) < len(s) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 'd' && (b[i] < '0' || b[i] > '9') || s[i] != 'd' && b[i] != s[i] {
			return nil, false
		}
	}
	return b[len(s):], true
}

// cutPrefix cuts the prefix p of b, and returns what follows.
func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return nil, false
	}
	return b[len(p):], true
}

// printable reports whether b is printable ASCII only.
func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
