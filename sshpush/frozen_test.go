package sshpush

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// freezer is a TCP proxy that forwards until frozen, then forwards nothing
// more while keeping both connections open: a peer whose host froze, or
// whose traffic is dropped, after the SSH connection was made.
type freezer struct {
	frozen atomic.Bool
	port   int
}

func newFreezer(t *testing.T, to string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{port: ln.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			for f.frozen.Load() {
				time.Sleep(10 * time.Millisecond) // hold the bytes; never deliver them
				if _, err := dst.Write(nil); err != nil {
					return
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Add(2)
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return f
}

// TestFrozenPeer: once a connected peer stops answering, every request on
// the connection fails within the session timeout instead of hanging.
func TestFrozenPeer(t *testing.T) {
	tests := []struct {
		name string
		do   func(c *Client) error
	}{
		{"ping", func(c *Client) error { _, err := c.Ping(t.Context()); return err }},
		{"ban", func(c *Client) error { _, err := c.Ban(t.Context(), []byte("203.0.113.1\n")); return err }},
		{"open stream", func(c *Client) error { _, err := c.OpenStream(t.Context()); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, target := okServer(t, serverConfig{})
			f := newFreezer(t, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
			key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKeys[0].PublicKey())))
			target = s.target(t, []string{fmt.Sprintf("[127.0.0.1]:%d %s", f.port, key)}, target.IdentityFiles...)
			target.Port = f.port
			c := dial(t, target, Options{SessionTimeout: 300 * time.Millisecond})
			if _, err := c.Ping(t.Context()); err != nil {
				t.Fatalf("Ping before freezing: %v", err)
			}
			f.frozen.Store(true)
			done := make(chan error, 1)
			go func() { done <- tt.do(c) }()
			select {
			case err := <-done:
				if ClassOf(err) != ClassTimeout {
					t.Errorf("got %v (%s), want a timeout", err, ClassOf(err))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still blocked 10 s after the peer froze, with a 300 ms session timeout")
			}
		})
	}
}
