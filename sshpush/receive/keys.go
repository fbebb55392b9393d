package receive

import (
	"path/filepath"
	"time"

	"github.com/banpush/banpush/sshpush/authkeys"
)

// maxKeyLines bounds the key lines ArgsFromKeys reads.
const maxKeyLines = 10000

// ArgsFromKeys reads the 'banpush receive' lines of an authorized_keys
// file (keys), at most maxKeyLines of them: the arguments of each, as
// 'banpush receive' reads them (ParseArgs). unknown is set when a line's
// forced command cannot be read (its words, or the arguments of a receive
// line): what it runs is not known, and it may be a receiver.
func ArgsFromKeys(keys []byte) (lines []Args, unknown bool) {
	for _, c := range authkeys.Commands(keys, maxKeyLines) {
		if c.Err != nil {
			unknown = true
			continue
		}
		if len(c.Argv) < 2 || c.Argv[1] != "receive" {
			continue
		}
		a, err := ParseArgs(c.Argv[1:])
		if err != nil {
			unknown = true
			continue
		}
		lines = append(lines, a)
	}
	return lines, unknown
}

// UnbanHoldFromKeys is how long the receiver remembers an unban
// (Config.UnbanHold): the largest --unban-window of the 'banpush receive'
// lines of authorized_keys (keys) that write the log at log, for no ban
// through any of them can be stale after that. It is 0, which the
// receiver takes for the longest window allowed, when keys has no such
// line, or has a 'receive' line whose arguments cannot be read (its
// window is not known).
func UnbanHoldFromKeys(keys []byte, log string) time.Duration {
	lines, unknown := ArgsFromKeys(keys)
	if unknown {
		return 0
	}
	log = filepath.Clean(log)
	var hold time.Duration
	for _, a := range lines {
		if filepath.Clean(a.Log) == log {
			hold = max(hold, a.UnbanWindow)
		}
	}
	return hold
}
