package deliver

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
)

func failItem(addr string, at time.Time, n int) spool.Item {
	return spool.Item{Kind: spool.Failure, Record: record.Record{Addr: netip.MustParseAddr(addr), Jail: "sshd", Time: at.Unix(), Failures: n}}
}

// TestRunFailures: failure reports go out as fail requests, in journal
// order between the bans, two reports of one address in one batch merged
// into one record with both counts; each peer counts them; and two fail
// requests to one peer are FailGap apart at least.
func TestRunFailures(t *testing.T) {
	f := newFixture(t, 2)
	for _, s := range f.servers {
		s.Fleet = receive.FleetPolicy{Failures: 12, Hosts: 3, Window: time.Hour}
	}
	now := time.Now()
	f.queue(t, now, failItem("203.0.113.7", now, 2), failItem("203.0.113.7", now, 3), failItem("2001:db8::7", now, 1))
	f.queue(t, now.Add(time.Millisecond), item(spool.Ban, "", "203.0.113.9"))
	f.queue(t, now.Add(2*time.Millisecond), failItem("203.0.113.7", now, 1))
	for _, r := range Run(context.Background(), f.config()) {
		if r.Class != sshpush.ClassOK || r.Reported != 3 || r.Delivered != 1 || r.Refused != 0 {
			t.Errorf("%s: %s, reported %d; want 3 reports and 1 ban delivered", r.Peer, r.Summary(), r.Reported)
		}
	}
	for i, s := range f.servers {
		b, err := os.ReadFile(s.Log + ".fleet")
		if err != nil || strings.Count(string(b), "pusher 203.0.113.7 ") != 1 || strings.Count(string(b), ",") != 5 {
			t.Errorf("%s: LOG.fleet %q (%v), want 6 failures of 203.0.113.7 and 1 of 2001:db8::7", s.Name, b, err)
		}
		if got := strings.Join(logKinds(t, s.Log), "|"); got != "ban 203.0.113.9" {
			t.Errorf("%s logged %q, want the ban only", s.Name, got)
		}
		times := s.FailTimes()
		if len(times) != 2 {
			t.Fatalf("%s: %d fail requests, want 2", s.Name, len(times))
		}
		if gap := times[1].Sub(times[0]); gap < FailGap {
			t.Errorf("%s: fail requests %v apart, want at least %v", s.Name, gap, FailGap)
		}
		if st, _ := f.spool.LoadState(f.peers[i].Name); st.Reported != 3 {
			t.Errorf("%s: state %+v, want 3 reported", s.Name, st)
		}
	}
}

// TestRunFailuresTooOld: a receiver that predates failure reports gets
// none: they are dropped, not kept for an upgrade that would find them
// stale, and the bans behind them go out.
func TestRunFailuresTooOld(t *testing.T) {
	f := newFixture(t, 1)
	s := f.servers[0]
	s.NoFail.Store(true)
	now := time.Now()
	f.queue(t, now, failItem("203.0.113.7", now, 2))
	f.queue(t, now.Add(time.Millisecond), item(spool.Ban, "", "203.0.113.9"))
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Dropped != 1 || r.Delivered != 1 {
		t.Errorf("got %s, want the report dropped and the ban delivered", r.Summary())
	}
	if n, _, _ := f.spool.Pending(f.peers[0].Name); n != 0 {
		t.Errorf("%d still queued", n)
	}
}

// TestRunFailuresNotAccepted: a receiver whose line does not turn the
// fleet policy on refuses the reports; they are counted refused, not
// retried.
func TestRunFailuresNotAccepted(t *testing.T) {
	f := newFixture(t, 1)
	now := time.Now()
	f.queue(t, now, failItem("203.0.113.7", now, 2))
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Refused != 1 || !strings.Contains(r.Refusal, string(record.ErrFleetOff)) {
		t.Errorf("got %s (%q), want the report refused as %q", r.Summary(), r.Refusal, record.ErrFleetOff)
	}
}
