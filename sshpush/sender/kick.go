package sender

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/banpush/banpush/sshpush/spool"
)

// Command is how to start a background sender: normally this very binary
// with the arguments of its send command.
type Command struct {
	Path string
	Args []string // without the program name
	// Environ is the caller's environment; only what a sender may need of
	// it is passed on (keepEnv).
	Environ []string
}

// Kick starts a background sender unless one holds the lock. Call it after
// appending: a sender that releases the lock looks at the queues again
// afterwards (see Background), so between the append and this test no
// record is stranded.
func Kick(s *spool.Spool, cmd Command) error {
	l, ok, err := TryLock(s)
	if err != nil || !ok {
		return err
	}
	l.Release()
	return spawn(cmd)
}

// spawn runs cmd detached: in a session of its own, with stdin, stdout and
// stderr on /dev/null, holding no descriptor of ours, in /. fail2ban reads
// its action's output to the end, so a sender holding its pipes would make
// it wait for the sender. It is not waited for.
func spawn(cmd Command) error {
	closeInherited()
	c := exec.Command(cmd.Path, cmd.Args...)
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Env = keepEnv(cmd.Environ)
	if err := c.Start(); err != nil {
		return err
	}
	return c.Process.Release()
}

// keepEnv keeps what a sender may need of an environment: the path, the
// agent socket, the time zone and the language.
func keepEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		for _, k := range []string{"PATH=", "SSH_AUTH_SOCK=", "TZ=", "LANG="} {
			if strings.HasPrefix(kv, k) {
				out = append(out, kv)
			}
		}
	}
	return out
}

// closeInheritedFrom marks every descriptor above stderr listed in dir
// (/proc/self/fd or /dev/fd) close-on-exec.
func closeInheritedFrom(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
