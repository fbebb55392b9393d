package deliver

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
)

func (f *fixture) queue(t *testing.T, at time.Time, items ...spool.Item) {
	t.Helper()
	if err := f.spool.AppendItems(context.Background(), at, items...); err != nil {
		t.Fatal(err)
	}
}

func item(kind spool.Kind, to, addr string) spool.Item {
	return spool.Item{Kind: kind, To: to, Record: record.Record{Addr: netip.MustParseAddr(addr)}}
}

// logKinds returns the log's lines as "KIND ADDRESS", in order.
func logKinds(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 3 {
			out = append(out, f[2]+" "+f[3])
		}
	}
	return out
}

// TestRunUnbanOrder: bans and unbans reach each peer in the order they
// were queued, bans as ban requests and unbans as unban requests; a ban
// queued before the unban of its address is cancelled, one queued after
// it (a fresh detection) is not, and the receiver refuses it as stale.
func TestRunUnbanOrder(t *testing.T) {
	f := newFixture(t, 2)
	for _, s := range f.servers {
		s.AllowUnban.Store(true)
	}
	t0 := time.Now()
	f.queue(t, t0, item(spool.Ban, "", "203.0.113.1"), item(spool.Ban, "", "203.0.113.2"))
	f.queue(t, t0.Add(time.Millisecond), item(spool.Unban, "", "203.0.113.1"))
	f.queue(t, t0.Add(2*time.Millisecond), item(spool.Ban, "", "203.0.113.3"), item(spool.Unban, "", "203.0.113.2"))
	f.queue(t, t0.Add(3*time.Millisecond), item(spool.Ban, "", "203.0.113.1"))
	for _, r := range Run(context.Background(), f.config()) {
		if r.Class != sshpush.ClassOK || r.Delivered != 1 || r.Refused != 1 || r.Unbanned != 2 || r.Cancelled != 2 {
			t.Errorf("%s: %s, want 1 delivered, 1 refused, 2 unbanned, 2 cancelled", r.Peer, r.Summary())
		}
	}
	want := "unban 203.0.113.1|ban 203.0.113.3|unban 203.0.113.2"
	for _, s := range f.servers {
		if got := strings.Join(logKinds(t, s.Log), "|"); got != want {
			t.Errorf("%s logged %s, want %s", s.Name, got, want)
		}
	}
	for _, p := range f.peers {
		if n, _, _ := f.spool.Pending(p.Name); n != 0 {
			t.Errorf("%s: %d still queued", p.Name, n)
		}
		st, _ := f.spool.LoadState(p.Name)
		if st.Unbanned != 2 || st.Cancelled != 2 || st.Delivered != 1 || st.Refused != 1 {
			t.Errorf("%s: state %+v", p.Name, st)
		}
	}
}

// TestRunFreshBanAfterUnbanStale: the receiver refuses a fresh ban of an
// address it unbanned within its window; the sender counts it refused and
// moves on.
func TestRunFreshBanAfterUnbanStale(t *testing.T) {
	f := newFixture(t, 1)
	f.servers[0].AllowUnban.Store(true)
	t0 := time.Now()
	f.queue(t, t0, item(spool.Unban, "", "203.0.113.9"))
	f.queue(t, t0.Add(time.Millisecond), item(spool.Ban, "", "203.0.113.9"))
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Unbanned != 1 || r.Refused != 1 || !strings.Contains(r.Refusal, string(record.ErrStale)) {
		t.Errorf("got %s (%q), want 1 unbanned and the fresh ban refused as stale", r.Summary(), r.Refusal)
	}
}

// TestRunForOnePeer: an item for one peer reaches that peer only.
func TestRunForOnePeer(t *testing.T) {
	f := newFixture(t, 3)
	f.queue(t, time.Now(), item(spool.Ban, "peer2", "203.0.113.7"), item(spool.Ban, "", "203.0.113.8"))
	for i, r := range Run(context.Background(), f.config()) {
		want := 1
		if i == 1 {
			want = 2
		}
		if r.Class != sshpush.ClassOK || r.Delivered != want {
			t.Errorf("%s: %s, want %d delivered", r.Peer, r.Summary(), want)
		}
	}
	if got := f.servers[1].Logged()["203.0.113.7"]; got != 1 {
		t.Errorf("peer2 logged 203.0.113.7 %d times", got)
	}
}

// TestRunUnbanNotAllowed: a receiver that does not allow this key to
// unban refuses the unbans; they are counted as refused, not retried, and
// the bans behind them go out.
func TestRunUnbanNotAllowed(t *testing.T) {
	f := newFixture(t, 1)
	f.queue(t, time.Now(), item(spool.Unban, "", "203.0.113.1"))
	f.queue(t, time.Now().Add(time.Millisecond), item(spool.Ban, "", "203.0.113.2"))
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Refused != 1 || r.Delivered != 1 || !strings.Contains(r.Refusal, string(record.ErrUnbanDenied)) {
		t.Errorf("got %s (%q), want the unban refused as not allowed and the ban delivered", r.Summary(), r.Refusal)
	}
}

// TestRunUnbanTooOld: a receiver that predates unbans fails them with
// receiver-too-old; the unban and everything after it stay queued until
// it is upgraded, then go out in order.
func TestRunUnbanTooOld(t *testing.T) {
	f := newFixture(t, 1)
	s := f.servers[0]
	s.NoUnban.Store(true)
	s.AllowUnban.Store(true)
	t0 := time.Now()
	f.queue(t, t0, item(spool.Ban, "", "203.0.113.1"))
	f.queue(t, t0.Add(time.Millisecond), item(spool.Unban, "", "203.0.113.2"))
	f.queue(t, t0.Add(2*time.Millisecond), item(spool.Ban, "", "203.0.113.3"))
	r := Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassTooOld || r.Delivered != 1 || !strings.Contains(sshpush.Reason(r.Err), "too old for unbans") {
		t.Fatalf("got %s, want receiver-too-old after 1 delivered", r.Summary())
	}
	if n, _, _ := f.spool.Pending("peer1"); n != 2 {
		t.Errorf("%d queued, want the unban and the ban after it", n)
	}
	st, _ := f.spool.LoadState("peer1")
	if st.LastFailureClass != string(sshpush.ClassTooOld) {
		t.Errorf("state: last failure %q", st.LastFailureClass)
	}
	s.NoUnban.Store(false)
	r = Run(context.Background(), f.config())[0]
	if r.Class != sshpush.ClassOK || r.Unbanned != 1 || r.Delivered != 1 {
		t.Errorf("after the upgrade: %s", r.Summary())
	}
	if got := strings.Join(logKinds(t, s.Log), "|"); got != "ban 203.0.113.1|unban 203.0.113.2|ban 203.0.113.3" {
		t.Errorf("logged %s", got)
	}
}
