package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/spool"
)

// flushRequestFile, in the spool, asks a background sender to stop early:
// a foreground flush is waiting for the sender lock.
const flushRequestFile = "flush.request"

// senderLogFile, in the spool, holds the background sender's diagnostics;
// it is rotated to senderLogFile+".1" past senderLogMax bytes.
const (
	senderLogFile = "sender.log"
	senderLogMax  = 1 << 20
)

// SendCmd is the background sender that push starts.
type SendCmd struct {
	Linger      time.Duration `help:"Keep connections open this long after the queue empties." default:"10s"`
	MaxRun      time.Duration `help:"Stop retrying unreachable peers after this long; the next push or flush goes on." default:"5m"`
	Concurrency int           `help:"Peers delivered to at once." default:"32"`
}

// Help explains the sender.
func (c *SendCmd) Help() string {
	return `send is the background sender: 'banpush push' starts it when none is running,
detached from fail2ban. It takes the spool's sender lock (at most one runs per
spool), delivers every peer's queue over one SSH connection per peer, lingers
for more bans, and exits. Unreachable peers are retried with backoff until
--max-run; authentication and host key failures are recorded (see 'banpush
status') and not retried until the next run. Its diagnostics go to syslog and
to sender.log in the spool directory.`
}

// Run delivers until every queue is empty, then exits.
func (c *SendCmd) Run(env *Env, g *Globals) error {
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return err
	}
	logf, closeLog := senderLogger(s.Dir(), env.Now)
	defer closeLog()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.MaxRun)
	defer cancel()

	for ctx.Err() == nil {
		release, ok, err := s.TryLockSender()
		if err != nil {
			logf("sender: %v", err)
			return err
		}
		if !ok {
			return nil // another sender runs
		}
		okPeers, err := c.once(ctx, env, g, s, logf)
		release()
		if err != nil {
			logf("sender: %v", err)
			return err
		}
		// Close the exit race: a ban appended after a peer's last look
		// finds the lock free (push then starts a sender) or shows here.
		pending, err := s.HasPending(okPeers)
		if err != nil || !pending {
			return err
		}
	}
	return nil
}

// once runs one delivery round with the lock held, and returns the peers
// whose queues it emptied.
func (c *SendCmd) once(ctx context.Context, env *Env, g *Globals, s *spool.Spool, logf func(string, ...any)) ([]string, error) {
	peers, bad, warnings, err := deliveryPeers(g, env, nil)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		logf("warning: %s", w)
	}
	for name, err := range bad {
		logf("peer %s: not delivered: %v", name, err)
	}
	stopCh := make(chan struct{})
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchFlushRequest(watchCtx, filepath.Join(s.Dir(), flushRequestFile), func() { close(stopCh) })

	wake := deliver.NewNotifier()
	if unwatch, err := deliver.Watch(filepath.Join(s.Dir(), "journal"), wake); err == nil {
		defer unwatch()
	} else {
		logf("warning: %v (polling instead)", err)
	}
	start := env.Now()
	results := deliver.Run(ctx, deliver.Config{
		Spool:       s,
		Peers:       peers,
		Options:     sshpush.Options{Warn: func(m string) { logf("warning: %s", m) }},
		Concurrency: c.Concurrency,
		Linger:      c.Linger,
		MaxAge:      g.MaxAge,
		Wake:        wake,
		Stop:        stopCh,
		Now:         env.Now,
		Logf:        logf,
	})
	var okPeers []string
	for _, r := range results {
		if r.Class == sshpush.ClassOK {
			okPeers = append(okPeers, r.Peer)
		}
		if r.Batches > 0 || r.Class != sshpush.ClassOK {
			logf("peer %s: %s (%d batches, %d connections)", r.Peer, r.Summary(), r.Batches, r.Dials)
		}
	}
	logf("sender: round done in %s", env.Now().Sub(start).Round(time.Millisecond))
	if err := compact(s, g); err != nil {
		logf("sender: compacting the spool: %v", err)
	}
	return okPeers, nil
}

// compact drops journal segments every configured peer has passed, and the
// cursors of peers no longer configured. It does nothing if the inventory
// cannot be read: a peer list that is wrong would lose that peer's queue.
func compact(s *spool.Spool, g *Globals) error {
	inv, err := loadInventory(g)
	if err != nil {
		return nil
	}
	return s.Compact(peerNames(inv))
}

// watchFlushRequest calls stop once when the flush request file appears.
func watchFlushRequest(ctx context.Context, path string, stop func()) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := os.Stat(path); err == nil {
				stop()
				return
			}
		}
	}
}

// senderLogger returns a logf that writes to syslog (when there is one) and
// to the spool's sender.log.
func senderLogger(dir string, now func() time.Time) (logf func(string, ...any), close func()) {
	var mu sync.Mutex
	var sys io.Writer
	sl, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "banpush")
	if err == nil {
		sys = sl
	}
	path := filepath.Join(dir, senderLogFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() > senderLogMax {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		f = nil
	}
	pid := os.Getpid()
	logf = func(format string, args ...any) {
		msg := oneLine(fmt.Sprintf(format, args...))
		mu.Lock()
		defer mu.Unlock()
		if sys != nil {
			fmt.Fprintln(sys, msg)
		}
		if f != nil {
			fmt.Fprintf(f, "%s banpush[%d]: %s\n", now().Format(time.RFC3339), pid, msg)
		}
	}
	return logf, func() {
		if f != nil {
			f.Close()
		}
		if sl != nil {
			sl.Close()
		}
	}
}

// errBusy is returned when a foreground delivery cannot get the sender lock.
var errBusy = errors.New("another banpush sender holds the spool's sender lock")
