package sshdtest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Port is a TCP port of 127.0.0.1 held for a server: a socket bound to it
// with SO_REUSEADDR that never listens. The kernel then hands the port to
// no socket that asks for any port, and never uses it as the local port
// of an outgoing connection, while a server told to listen on it can (sshd
// and Go's net.Listen set SO_REUSEADDR). Until one does, connections to
// it are refused, as to a host whose sshd is down. A port found free and
// given back before sshd binds it may be taken in between (by the local
// end of a connection, among others); a held one may not.
type Port struct {
	Number int

	mu sync.Mutex
	fd int // -1 once closed
}

// ReservePort holds a port that no other socket of the machine uses.
func ReservePort() (*Port, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sshdtest: reserving a port: %w", err)
	}
	// Bound without SO_REUSEADDR, so that the kernel picks a port no
	// socket has; set afterwards, so that a server may share it.
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sshdtest: reserving a port: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sshdtest: reserving a port: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sshdtest: reserving a port: %w", err)
	}
	return &Port{Number: sa.(*unix.SockaddrInet4).Port, fd: fd}, nil
}

// Addr is "127.0.0.1:PORT".
func (p *Port) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Number)) }

// Close gives the port back. Closing a closed Port does nothing.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}

// Blackhole makes a held port a host that never answers: a listener whose
// queue is full, so that the kernel drops every new connection's SYN and
// the client waits for its connect timeout, as behind a firewall that drops
// packets. Close ends it; the port stays held.
func (p *Port) Blackhole() (*Hole, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sshdtest: blackhole: %w", err)
	}
	h := &Hole{fd: fd}
	fail := func(err error) (*Hole, error) {
		h.Close()
		return nil, fmt.Errorf("sshdtest: blackhole: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: p.Number, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	// A backlog of 0 queues one connection; this one fills the queue,
	// and it is never accepted.
	if err := unix.Listen(fd, 0); err != nil {
		return fail(err)
	}
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		return fail(err)
	}
	h.conns = append(h.conns, c)
	// The queue is full once a second connection gets no answer.
	probe, err := net.DialTimeout("tcp", p.Addr(), 200*time.Millisecond)
	if err == nil {
		probe.Close()
		return fail(errors.New("the kernel accepted a connection past the full queue"))
	}
	return h, nil
}

// Tarpit makes a held port a host whose sshd accepts connections and then
// stalls: with banner false it never says a word, with banner true it
// sends an SSH banner and nothing more. Close ends it and every connection
// it holds; the port stays held.
func (p *Port) Tarpit(banner bool) (*Hole, error) {
	l, err := net.Listen("tcp", p.Addr())
	if err != nil {
		return nil, fmt.Errorf("sshdtest: tarpit: %w", err)
	}
	h := &Hole{fd: -1, ln: l, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if banner {
				c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

// Hole is a Blackhole or a Tarpit.
type Hole struct {
	fd   int          // a blackhole's listening socket, or -1
	ln   net.Listener // a tarpit's
	done chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

// Close stops listening and closes every connection: a client waiting on
// one sees it end.
func (h *Hole) Close() error {
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
	if h.ln != nil {
		h.ln.Close()
		<-h.done
		h.ln = nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
	return nil
}
