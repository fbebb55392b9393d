package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/logline"
	"golang.org/x/sys/unix"
)

// tailLen is how much of the end of a received log CheckReceivedLines
// reads: some hundreds of lines.
const tailLen = 64 << 10

// CheckReceivedLines reads the end of a received log (at most tailLen
// bytes) and says what its last line received, and when, and whether every
// line there is one that 'banpush receive' writes (logline.Parse). A line
// that is not is never banned on, but shows that another hand writes the
// log. The log is opened without following a link, through its directory
// (the receiving account's file, read as root); only what parses is
// repeated.
func CheckReceivedLines(log string, now time.Time) Result {
	tail, err := readTail(log)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return result("received-lines", log, Skip, "", "no log yet: nothing received")
	case err != nil:
		return result("received-lines", log, Warn, "", "cannot read it: %v", err)
	}
	var last logline.Line
	lines, foreign := 0, 0
	for len(tail) > 0 {
		line, rest, ok := bytes.Cut(tail, []byte("\n"))
		if !ok {
			break // a line being written, or one cut short: not counted
		}
		tail = rest
		lines++
		l, err := logline.Parse(line)
		if err != nil {
			foreign++
			continue
		}
		last = l
	}
	switch {
	case lines == 0:
		return result("received-lines", log, OK, "", "empty: nothing received since it was made or rotated")
	case foreign > 0:
		return result("received-lines", log, Warn,
			"find what writes them: only 'banpush receive' should append to this log (no filter bans on its lines, but another hand writes here)",
			"%d of the last %d lines are not lines that banpush writes", foreign, lines)
	}
	return result("received-lines", log, OK, "", "last line: %s of %s from %s, %s ago; %d lines read from the end, all banpush's",
		last.Kind, last.Record.Addr, last.Peer, now.Sub(last.Time).Round(time.Second), lines)
}

// readTail reads the last tailLen bytes of the regular file log, from its
// first whole line, without following a link and refusing a file with a
// second name.
func readTail(log string) ([]byte, error) {
	d, err := fsutil.OpenDir(filepath.Dir(log))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, st, err := d.Open(filepath.Base(log), unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Nlink != 1 {
		return nil, fmt.Errorf("%s has %d names (hard links)", log, st.Nlink)
	}
	off := max(st.Size-tailLen, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, tailLen))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		// The first line read is a piece of a line: drop it.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		} else {
			b = nil
		}
	}
	return b, nil
}
