package sender

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logName is the sender's log, in the spool directory. It is rotated to
// logName+".1" when a run starts and finds it past logMax bytes.
const (
	logName = "sender.log"
	logMax  = 1 << 20
)

// Log is where senders write their diagnostics: the spool's sender.log and
// syslog (tag banpush, facility daemon) when there is one. Every message is
// one line. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	f   *os.File
	sys io.WriteCloser
	now func() time.Time
	pid int
}

// OpenLog opens the sender log of the spool in dir. What cannot be opened is
// left out: a sender must deliver even when it cannot log.
func OpenLog(dir string, now func() time.Time) *Log {
	l := &Log{now: now, pid: os.Getpid()}
	if sl, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "banpush"); err == nil {
		l.sys = sl
	}
	path := LogPath(dir)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Size() > logMax {
		_ = os.Rename(path, path+".1")
	}
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW, 0o600); err == nil {
		l.f = f
	}
	return l
}

// LogPath is the sender log of the spool in dir.
func LogPath(dir string) string { return filepath.Join(dir, logName) }

// Printf logs one message.
func (l *Log) Printf(format string, args ...any) {
	// One line, whatever an error wrapped into the message.
	msg := strings.NewReplacer("\n", " ", "\r", " ").Replace(fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sys != nil {
		fmt.Fprintln(l.sys, msg)
	}
	if l.f != nil {
		fmt.Fprintf(l.f, "%s banpush[%d]: %s\n", l.now().Format(time.RFC3339), l.pid, msg)
	}
}

// Close closes the log.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if l.sys != nil {
		l.sys.Close()
		l.sys = nil
	}
}
