package fakepeer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/wire"
)

// Receiver runs the real receiver (package receive) for every request, as
// 'banpush receive --peer Peer --log Log' would under sshd, and lets a test
// make it busy, old or rate-limited. Its fields may be changed while it
// serves.
type Receiver struct {
	Peer string // the pushing peer's name in its log lines
	Log  string // the log it appends to

	// Burst is the token bucket size (--max-burst); 0 means plenty.
	Burst atomic.Int32
	// Busy answers this many more requests with wire.ExitTemp, writing
	// nothing, as a receiver whose log is locked does.
	Busy atomic.Int32
	// NoStream answers stream requests as a receiver that predates them.
	NoStream atomic.Bool
	// NoUnban answers unban requests as a receiver that predates them.
	NoUnban atomic.Bool
	// AllowUnban is the receiver's --allow-unban.
	AllowUnban atomic.Bool
	// NoFail answers fail requests as a receiver that predates them.
	NoFail atomic.Bool
	// Fleet is the receiver's fleet policy (--fleet-failures ...); the
	// zero policy refuses every failure report.
	Fleet receive.FleetPolicy

	// failTimes are when each fail request came.
	mu        sync.Mutex
	failTimes []time.Time

	Streams atomic.Int32 // stream sessions served
	Batches atomic.Int32 // batches answered, streamed or not
}

// NewReceiver returns a Receiver named "pusher" writing to received.log in
// a new temporary directory.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	return &Receiver{Peer: "pusher", Log: filepath.Join(t.TempDir(), "received.log")}
}

// Handle is the Receiver's Handler.
func (r *Receiver) Handle(e *Exec) Exit {
	req, err := wire.ParseRequest(e.Command)
	if err != nil || req == wire.Stream && r.NoStream.Load() || req == wire.Unban && r.NoUnban.Load() || req == wire.Fail && r.NoFail.Load() {
		fmt.Fprintf(e.Stderr, "banpush: error: %v\n", wire.ErrUnknownRequest)
		return Exit{Status: wire.ExitRequest}
	}
	if req == wire.Ping {
		if err := receive.Writable(r.Log); err != nil {
			return r.exit(e, err)
		}
		line, _ := wire.PingAnswer{Peer: r.Peer, Version: "test"}.Marshal()
		e.Stdout.Write(append(line, '\n'))
		return Exit{}
	}
	if r.Busy.Load() > 0 {
		r.Busy.Add(-1)
		fmt.Fprintln(e.Stderr, "banpush: error: log busy, nothing written: locking rate-limit state: lock held by another process")
		return Exit{Status: wire.ExitTemp}
	}
	cfg := receive.Config{
		Peer: r.Peer, LogPath: r.Log, MaxBurst: 100000, MaxPerMinute: 0,
		LockTimeout: time.Second, Now: time.Now, UnbanWindow: receive.DefaultUnbanWindow,
	}
	if b := r.Burst.Load(); b > 0 {
		cfg.MaxBurst = int(b)
	}
	if req == wire.Stream {
		r.Streams.Add(1)
		err := receive.Serve(context.Background(), cfg, e.Stdin, &counting{w: e.Stdout, n: &r.Batches}, e.Stderr, receive.StreamLimits{MaxShown: 10})
		return r.exit(e, err)
	}
	cfg.AllowUnban = r.AllowUnban.Load()
	cfg.Fleet = r.Fleet
	handle := receive.Accept
	switch req {
	case wire.Unban:
		handle = receive.Unban
	case wire.Fail:
		handle = receive.Fail
		r.mu.Lock()
		r.failTimes = append(r.failTimes, time.Now())
		r.mu.Unlock()
	}
	res, err := handle(context.Background(), cfg, e.Stdin)
	if err != nil {
		return r.exit(e, err)
	}
	r.Batches.Add(1)
	receive.WriteAnswer(e.Stdout, e.Stderr, res, 10)
	return Exit{}
}

// FailTimes returns when each fail request came, in order.
func (r *Receiver) FailTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failTimes)
}

// exit maps the receiver's error to its exit status as banpush receive does.
func (r *Receiver) exit(e *Exec, err error) Exit {
	var temp *receive.TempError
	var unwritable *receive.WriteError
	switch {
	case err == nil:
		return Exit{}
	case errors.As(err, &unwritable):
		fmt.Fprintf(e.Stderr, "banpush: error: %v\n", err)
		return Exit{Status: wire.ExitCannotWrite}
	case errors.As(err, &temp):
		fmt.Fprintf(e.Stderr, "banpush: error: %v\n", err)
		return Exit{Status: wire.ExitTemp}
	default:
		fmt.Fprintf(e.Stderr, "banpush: error: %v\n", err)
		return Exit{Status: wire.ExitData}
	}
}

// Logged counts the log's lines per address, whatever their kind.
func (r *Receiver) Logged() map[string]int {
	got := map[string]int{}
	f, err := os.Open(r.Log)
	if err != nil {
		return got
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 3 {
			got[fields[3]]++
		}
	}
	return got
}

// counting counts the answer lines written through it.
type counting struct {
	w io.Writer
	n *atomic.Int32
}

func (c *counting) Write(p []byte) (int, error) {
	c.n.Add(int32(bytes.Count(p, []byte{'\n'})))
	return c.w.Write(p)
}
