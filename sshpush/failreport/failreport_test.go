package failreport

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2blog"
	"github.com/banpush/banpush/sshpush/record"
)

// fake is a log of failures with a cursor, and where reports went.
type fake struct {
	log       []f2blog.Failure
	committed int
	read      int
	queued    [][]record.Record
	local     [][]record.Record
	queueErr  error
	localErr  error
	maxBatch  int // 0: no bound
}

func (f *fake) batch() int {
	if f.maxBatch == 0 {
		return len(f.log)
	}
	return f.maxBatch
}

func (f *fake) config() Config {
	return Config{
		Read: func(context.Context) ([]f2blog.Failure, bool, error) {
			f.read = min(len(f.log), f.committed+f.batch())
			return f.log[f.committed:f.read], f.read < len(f.log), nil
		},
		Commit: func() error { f.committed = f.read; return nil },
		Queue: func(_ context.Context, recs []record.Record) error {
			if f.queueErr != nil {
				return f.queueErr
			}
			f.queued = append(f.queued, recs)
			return nil
		},
		Local: func(_ context.Context, recs []record.Record) error {
			if f.localErr != nil {
				return f.localErr
			}
			f.local = append(f.local, recs)
			return nil
		},
	}
}

func failure(jail, addr string, t int64) f2blog.Failure {
	return f2blog.Failure{Jail: jail, Addr: netip.MustParseAddr(addr), Time: time.Unix(t, 0)}
}

// TestRoundSums: one report per address, with its count of failures, the
// latest time and that failure's jail; refused addresses left out; the cursor moves once the reports are queued.
func TestRoundSums(t *testing.T) {
	f := &fake{log: []f2blog.Failure{
		failure("sshd", "203.0.113.7", 100),
		failure("sshd", "2001:db8::1", 101),
		failure("sshd", "203.0.113.7", 103),
		failure("sshd", "192.168.1.1", 103),
		failure("sshd", "203.0.113.7", 102),
	}}
	rep, err := New(f.config()).Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []record.Record{
		{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: 103, Failures: 3},
		{Addr: netip.MustParseAddr("2001:db8::1"), Jail: "sshd", Time: 101, Failures: 1},
	}
	if len(f.queued) != 1 || !reflect.DeepEqual(f.queued[0], want) {
		t.Errorf("queued %+v, want %+v", f.queued, want)
	}
	if len(f.local) != 1 || !reflect.DeepEqual(f.local[0], want) {
		t.Errorf("given to the local receiver %+v, want %+v", f.local, want)
	}
	if rep != (Report{Failures: 5, Reports: 2, Refused: 1, Local: 2}) || f.committed != len(f.log) {
		t.Errorf("report %+v, committed %d; want 5 failures, 2 reports, 1 refused, 2 local, all committed", rep, f.committed)
	}
}

// TestRoundQueueFails: a batch that cannot be queued leaves the cursor
// where it was: the next round reads and queues the same failures.
func TestRoundQueueFails(t *testing.T) {
	f := &fake{log: []f2blog.Failure{failure("sshd", "203.0.113.7", 100)}, queueErr: errors.New("disk full")}
	r := New(f.config())
	if _, err := r.Round(context.Background()); err == nil || f.committed != 0 {
		t.Fatalf("err %v, committed %d; want the error and nothing committed", err, f.committed)
	}
	f.queueErr = nil
	if _, err := r.Round(context.Background()); err != nil || len(f.queued) != 1 || f.committed != 1 {
		t.Errorf("err %v, queued %v, committed %d; want the failure queued and committed", err, f.queued, f.committed)
	}
}

// TestRoundLocalRetries: a local receiver that fails gets the reports
// again with the next batch, merged by address, and after localTries
// failures they are dropped there (the peers have them).
func TestRoundLocalRetries(t *testing.T) {
	f := &fake{log: []f2blog.Failure{failure("sshd", "203.0.113.7", 100)}, localErr: errors.New("busy")}
	r := New(f.config())
	if _, err := r.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.localErr = nil
	f.log = append(f.log, failure("sshd", "203.0.113.7", 105), failure("sshd", "203.0.113.8", 105))
	rep, err := r.Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []record.Record{
		{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd", Time: 105, Failures: 2},
		{Addr: netip.MustParseAddr("203.0.113.8"), Jail: "sshd", Time: 105, Failures: 1},
	}
	if rep.Local != 2 || len(f.local) != 1 || !reflect.DeepEqual(f.local[0], want) {
		t.Errorf("local %+v (%d), want %+v", f.local, rep.Local, want)
	}

	f.localErr = errors.New("down")
	for i := range localTries {
		f.log = append(f.log, failure("sshd", "203.0.113.9", int64(110+i)))
		if _, err := r.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.pending) != 0 {
		t.Errorf("after %d failed tries, %d reports still pending", localTries, len(r.pending))
	}
	if len(f.queued) != 2+localTries {
		t.Errorf("%d batches queued for the peers, want %d: the local receiver never holds them back", len(f.queued), 2+localTries)
	}
}

// TestRoundBatches: a log longer than a batch is read batch after batch in
// one round, each queued before the next is read.
func TestRoundBatches(t *testing.T) {
	f := &fake{maxBatch: 2}
	for i := range 5 {
		f.log = append(f.log, failure("sshd", "203.0.113.7", int64(100+i)))
	}
	rep, err := New(f.config()).Round(context.Background())
	if err != nil || rep.Failures != 5 || len(f.queued) != 3 || f.committed != 5 {
		t.Errorf("report %+v (%v), %d batches queued, committed %d; want 5 failures in 3 batches, all committed", rep, err, len(f.queued), f.committed)
	}
}
