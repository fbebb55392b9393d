// Package f2b talks to the local fail2ban through fail2ban-client: the
// running server (through its socket, fail2ban-client -s SOCKET) and the
// configuration its files describe (fail2ban-client -c DIR -d). Every
// command is an argument list run with os/exec, never a shell.
//
// What it trusts: fail2ban-client and the server behind the socket, which
// run as root on this host. Their output is parsed defensively all the
// same (bounded, every line checked), and jail names given to it must be
// names fail2ban could have made (ValidJail).
package f2b

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// DefaultSocket is where Debian's fail2ban listens.
const DefaultSocket = "/var/run/fail2ban/fail2ban.sock"

// DefaultConfig is fail2ban's configuration directory.
const DefaultConfig = "/etc/fail2ban"

// DefaultTimeout bounds one fail2ban-client run.
const DefaultTimeout = 20 * time.Second

// maxOutput bounds what is read of one run's output.
const maxOutput = 4 << 20

// ErrNotRunning is returned when no fail2ban server answers at the socket.
var ErrNotRunning = errors.New("f2b: no fail2ban server answers at the socket")

// ErrNoJail is returned for a jail the running server does not have.
var ErrNoJail = errors.New("f2b: the running fail2ban has no such jail")

// Client runs fail2ban-client against one server.
type Client struct {
	// Path is the fail2ban-client program; empty means "fail2ban-client"
	// from PATH.
	Path string
	// Socket is the server's socket; empty means DefaultSocket.
	Socket string
	// Timeout bounds each run; zero means DefaultTimeout.
	Timeout time.Duration
}

// Error is a fail2ban-client run that failed in a way this package does not
// name with a sentinel: its arguments and the first line it wrote.
type Error struct {
	Args    []string
	Message string
	Err     error
}

func (e *Error) Error() string {
	s := "f2b: fail2ban-client " + strings.Join(e.Args, " ") + ": " + e.Err.Error()
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func (c *Client) program() string {
	if c.Path != "" {
		return c.Path
	}
	return "fail2ban-client"
}

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultSocket
}

// run runs fail2ban-client with args and returns its stdout.
func (c *Client) run(ctx context.Context, args ...string) ([]byte, error) {
	timeout := c.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.program(), args...)
	// A child left holding the pipes must not keep Run waiting after the
	// timeout has killed fail2ban-client.
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitWriter{w: &stdout, n: maxOutput}
	cmd.Stderr = &limitWriter{w: &stderr, n: maxOutput}
	if err := cmd.Run(); err != nil {
		return nil, failed(ctx, args, timeout, stdout.Bytes(), stderr.Bytes(), err)
	}
	return stdout.Bytes(), nil
}

// serverStream runs a command against the server at the socket and gives
// its stdout to read as it comes, for an answer too long to hold: what
// read leaves unread is read and dropped, and an error of the command
// comes before read's.
func (c *Client) serverStream(ctx context.Context, read func(io.Reader) error, args ...string) error {
	args = append([]string{"-s", c.socket()}, args...)
	timeout := c.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.program(), args...)
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: maxOutput}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return failed(ctx, args, timeout, nil, nil, err)
	}
	// The first bytes are kept: fail2ban-client says there that a jail
	// does not exist.
	var head bytes.Buffer
	tee := io.TeeReader(out, &limitWriter{w: &head, n: 4096})
	rerr := read(tee)
	_, _ = io.Copy(io.Discard, tee)
	if err := cmd.Wait(); err != nil {
		return failed(ctx, args, timeout, head.Bytes(), stderr.Bytes(), err)
	}
	return rerr
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// failed says why a run of fail2ban-client with args failed with err,
// after what it wrote.
func failed(ctx context.Context, args []string, timeout time.Duration, stdout, stderr []byte, err error) error {
	msg := lastError(stderr)
	switch {
	case strings.Contains(msg, "Failed to access socket path") || strings.Contains(msg, "Is fail2ban running?"):
		return ErrNotRunning
	case bytes.Contains(stdout, []byte("does not exist")) || strings.Contains(msg, "UnknownJailException"):
		return ErrNoJail
	case ctx.Err() != nil:
		return &Error{Args: args, Err: fmt.Errorf("no answer within %s", timeout)}
	}
	return &Error{Args: args, Message: msg, Err: err}
}

// lastError is the last line of fail2ban-client's stderr that says ERROR,
// without its timestamp and logger, in printable ASCII.
func lastError(stderr []byte) string {
	var last string
	for _, l := range strings.Split(string(stderr), "\n") {
		if _, msg, ok := strings.Cut(l, "ERROR"); ok {
			last = strings.TrimSpace(msg)
		}
	}
	if len(last) > 200 {
		last = last[:200] + "..."
	}
	return record.Printable(last)
}

// server runs a command against the server at the socket.
func (c *Client) server(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, append([]string{"-s", c.socket()}, args...)...)
}

// Ping reports whether the server answers.
func (c *Client) Ping(ctx context.Context) error {
	out, err := c.server(ctx, "ping")
	if err != nil {
		return err
	}
	if !bytes.Contains(out, []byte("pong")) {
		return &Error{Args: []string{"ping"}, Err: errors.New("unexpected answer")}
	}
	return nil
}

// Jails lists the jails the server runs.
func (c *Client) Jails(ctx context.Context) ([]string, error) {
	out, err := c.server(ctx, "status")
	if err != nil {
		return nil, err
	}
	return ParseStatus(out)
}

// Actions lists the actions the running jail has loaded, by name.
func (c *Client) Actions(ctx context.Context, jail string) ([]string, error) {
	if !ValidJail(jail) {
		return nil, fmt.Errorf("f2b: invalid jail name")
	}
	out, err := c.server(ctx, "get", jail, "actions")
	if err != nil {
		return nil, err
	}
	return ParseActions(out)
}

// LogPaths lists the files the running jail watches.
func (c *Client) LogPaths(ctx context.Context, jail string) ([]string, error) {
	if !ValidJail(jail) {
		return nil, fmt.Errorf("f2b: invalid jail name")
	}
	out, err := c.server(ctx, "get", jail, "logpath")
	if err != nil {
		return nil, err
	}
	return ParseLogPaths(out)
}

// LogTarget returns the file the server logs to (its logtarget): where
// its "Found" lines are to be read. A server that logs to SYSLOG, STDOUT,
// STDERR or the systemd journal is ErrLogNotFile.
func (c *Client) LogTarget(ctx context.Context) (string, error) {
	out, err := c.server(ctx, "get", "logtarget")
	if err != nil {
		return "", err
	}
	return ParseLogTarget(out)
}

// Configured reads the jails that fail2ban's configuration in dir
// describes, as a start or reload would set them up (fail2ban-client -c DIR
// -d, which does not talk to the server).
func (c *Client) Configured(ctx context.Context, dir string) ([]Jail, error) {
	if dir == "" {
		dir = DefaultConfig
	}
	out, err := c.run(ctx, "-c", dir, "-d")
	if err != nil {
		return nil, err
	}
	return ParseDump(out)
}

// Settings reads every enabled jail's settings from fail2ban's
// configuration in dir, as Configured does (fail2ban-client -c DIR -d):
// the jails a start would set up, whether the server runs or not.
func (c *Client) Settings(ctx context.Context, dir string) ([]Setting, error) {
	if dir == "" {
		dir = DefaultConfig
	}
	out, err := c.run(ctx, "-c", dir, "-d")
	if err != nil {
		return nil, err
	}
	return ParseSettings(out)
}

// jailName is compiled at its first use: its bounded repetition makes a
// large program, which every banpush run, each push included, would
// otherwise compile at start-up (0.2 ms).
var jailName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9._@-][A-Za-z0-9._@:-]{0,99}$`)
})

// ValidJail reports whether name can be a jail's name here: fail2ban
// allows more, but no jail of banpush's or of Debian's packaged
// configuration needs more than these characters.
func ValidJail(name string) bool { return jailName().MatchString(name) }

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > l.n {
		p = p[:l.n]
	}
	l.n -= len(p)
	if _, err := l.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}
