package main

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/doctor"
	"golang.org/x/crypto/ssh"
)

// maxHoldLines bounds the key lines unbanHold reads.
const maxHoldLines = 10000

// unbanHold is how long the receiver remembers an unban
// (receive.Config.UnbanHold): the largest --unban-window of the 'banpush
// receive' lines of authorized_keys (keys) that write the log at log, for
// no ban through any of them can be stale after that. It is 0, which the
// receiver takes for the longest window allowed, when keys has no such
// line, or has a 'receive' line whose arguments cannot be read (its
// window is not known).
func unbanHold(keys []byte, log string) time.Duration {
	lines, unknown := receiveLines(keys)
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

// receiveLines reads the 'banpush receive' lines of authorized_keys
// (keys), at most maxHoldLines of them: the arguments of each, as 'banpush
// receive' reads them. unknown is set when a line's forced command cannot
// be read (its words, or the arguments of a receive line): what it runs
// is not known, and it may be a receiver.
func receiveLines(keys []byte) (lines []ReceiveArgs, unknown bool) {
	if len(keys) > authkeys.MaxFileSize {
		keys = keys[:authkeys.MaxFileSize]
	}
	rest := keys
	for i := 0; i < maxHoldLines && len(rest) > 0; i++ {
		_, _, opts, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		rest = next
		cmd, ok := commandOption(opts)
		if !ok {
			continue
		}
		argv, err := doctor.SplitCommand(cmd)
		if err != nil {
			unknown = true
			continue
		}
		if len(argv) < 2 || argv[1] != "receive" {
			continue
		}
		args, ok := receiveArgs(argv[1:])
		if !ok {
			unknown = true
			continue
		}
		lines = append(lines, args)
	}
	return lines, unknown
}

// commandOption is the value of an authorized_keys command="..." option,
// unquoted as sshd does.
func commandOption(opts []string) (string, bool) {
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, `command="`)
		if ok && strings.HasSuffix(v, `"`) {
			return strings.ReplaceAll(strings.TrimSuffix(v, `"`), `\"`, `"`), true
		}
	}
	return "", false
}

// receiveArgs reads the arguments of a receive line ("receive", ...) as
// 'banpush receive' would, without the environment.
func receiveArgs(args []string) (ReceiveArgs, bool) {
	noEnv := func(string) (string, bool) { return "", false }
	if c, ok := fastReceive(args, noEnv); ok {
		return c.ReceiveArgs, true
	}
	a, err := parseReceiveArgs(args)
	return a, err == nil
}
