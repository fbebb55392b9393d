package status

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tableWidth is the width the status table fits in: the failure message,
// its last column, is cut to fit; --json has it whole.
const tableWidth = 100

// minDetail is the least of a failure the table shows, however wide the
// columns before it (long peer names).
const minDetail = 24

// WriteTable writes the table of 'banpush status': the counts that are zero for every peer
// are left out (refused, dropped, unbanned, cancelled), times are short,
// and the last failure comes last, cut to fit tableWidth.
func WriteTable(w io.Writer, rep Report, now time.Time) error {
	running := "not running"
	if rep.SenderRunning {
		running = "running"
	}
	fmt.Fprintf(w, "spool %s, sender %s\n", rep.Spool, running)
	for _, sp := range rep.Self {
		fmt.Fprintf(w, "self %s (%s): nothing is sent to it\n", sp.Name, sp.Reason)
	}
	if fw := rep.Firewall; fw != nil {
		running, set := "not running", "no kernel set"
		if fw.Running {
			running = "running"
		}
		if fw.SetPresent {
			set = fmt.Sprintf("kernel set of %d", fw.Members)
		}
		fmt.Fprintf(w, "firewall %s, %d bans in force, %s (%d missing, %d extra)\n", running, fw.Bans, set, fw.Missing, fw.Extra)
	}
	type column struct {
		head     string
		cell     func(p Peer) string
		optional bool // left out when zero for every peer
		zero     func(p Peer) bool
	}
	count := func(head string, n func(p Peer) int64) column {
		return column{head: head, cell: func(p Peer) string { return strconv.FormatInt(n(p), 10) },
			optional: true, zero: func(p Peer) bool { return n(p) == 0 }}
	}
	all := []column{
		{head: "PEER", cell: func(p Peer) string { return p.Peer }},
		{head: "QUEUED", cell: func(p Peer) string { return strconv.Itoa(p.Queued) }},
		{head: "OLDEST", cell: func(p Peer) string { return age(p.OldestAgeSeconds, p.Queued) }},
		{head: "LAST OK", cell: func(p Peer) string { return ago(now, p.LastSuccess) }},
		{head: "DELIVERED", cell: func(p Peer) string { return strconv.FormatInt(p.Delivered, 10) }},
		count("REFUSED", func(p Peer) int64 { return p.Refused }),
		count("DROPPED", func(p Peer) int64 { return p.Dropped }),
		count("UNBANNED", func(p Peer) int64 { return p.Unbanned }),
		count("CANCELLED", func(p Peer) int64 { return p.Cancelled }),
		count("REPORTED", func(p Peer) int64 { return p.Reported }),
	}
	var cols []column
	for _, c := range all {
		if !c.optional || slices.ContainsFunc(rep.Peers, func(p Peer) bool { return !c.zero(p) }) {
			cols = append(cols, c)
		}
	}
	rows := [][]string{make([]string, len(cols))}
	for i, c := range cols {
		rows[0][i] = c.head
	}
	for _, p := range rep.Peers {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = c.cell(p)
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(cols))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	before := 0 // the width of the columns before the failure's
	for _, wd := range widths {
		before += wd + 2
	}
	room := max(tableWidth-before, minDetail)
	for r, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-len(cell)+2))
		}
		last := "LAST FAILURE"
		if r > 0 {
			last = failure(now, rep.Peers[r-1], room)
		}
		b.WriteString(last)
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func age(sec float64, n int) string {
	if n == 0 {
		return "-"
	}
	return short(time.Duration(sec) * time.Second)
}

func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return short(now.Sub(*t)) + " ago"
}

// short writes a duration in its two largest units, rounded down: 42s,
// 5m3s, 2h7m, 3d4h.
func short(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	units := []struct {
		n    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	i := 0
	for i < len(units)-1 && d < units[i].n {
		i++
	}
	s := strconv.FormatInt(int64(d/units[i].n), 10) + units[i].name
	if i+1 < len(units) {
		if r := d % units[i].n / units[i+1].n; r > 0 {
			s += strconv.FormatInt(int64(r), 10) + units[i+1].name
		}
	}
	return s
}

// failure is a peer's last failure in at most n bytes: its class, when,
// and its message (cut), or whether it has recovered since.
func failure(now time.Time, p Peer, n int) string {
	if p.LastFailure == nil {
		return "-"
	}
	if p.LastSuccess != nil && p.LastSuccess.After(*p.LastFailure) {
		return cut(p.LastFailureClass+" "+ago(now, p.LastFailure)+", since recovered", n)
	}
	return cut(p.LastFailureClass+" "+ago(now, p.LastFailure)+": "+p.LastFailureMessage, n)
}

// cut shortens s to n bytes, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
