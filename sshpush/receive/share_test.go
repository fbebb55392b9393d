package receive

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

// flood sends n distinct documentation addresses from cfg, in batches the
// wire allows, as bans (or reports) or as unbans.
func flood(t *testing.T, cfg Config, n int, unbans bool) (accepted int) {
	t.Helper()
	for i := 0; i < n; i += 10000 {
		batch := addrs(i, min(10000, n-i))
		var res Result
		if unbans {
			res = unban(t, cfg, batch)
		} else {
			res = accept(t, cfg, batch)
		}
		accepted += res.Accepted
	}
	return accepted
}

// TestQuorumShare: a quorum peer with a 3-hour window and the rate limit to
// fill the whole memory does, and the honest peers' reports still get in
// and make their quorum.
func TestQuorumShare(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hog := quorumConfig(t, &now, "hog")
	hog.Quorum, hog.MaxBurst = 3*time.Hour, 30000
	if n := flood(t, hog, 20000, false); n != 20000 {
		t.Fatalf("the hog's reports: %d accepted, want 20000 (an empty memory has room)", n)
	}
	for _, p := range []string{"a", "b"} {
		c := hog
		c.Peer, c.Quorum = p, time.Hour
		if res := accept(t, c, "203.0.113.7\n"); res.Accepted != 1 || len(res.Refused) != 0 {
			t.Errorf("%s's report into the memory the hog filled: %+v, want it written", p, res)
		}
	}
	if got := logLines(t, hog.LogPath, logline.Quorum); len(got) != 1 || !strings.HasSuffix(got[0], " peer=b reports=2") {
		t.Errorf("quorum lines %q, want b's with 2 reports", got)
	}
	if res := accept(t, hog, addrs(20000, 1)); res.Limited != 1 {
		t.Errorf("the hog's next new report, over its share of a full memory: %+v, want it rate-limited", res)
	}
}

// TestUnbanShare: an allow-unban peer that fills the unban memory does not
// keep another's unbans out.
func TestUnbanShare(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hog := testConfig(t, &now)
	hog.Peer, hog.AllowUnban, hog.MaxBurst = "hog", true, 30000
	if n := flood(t, hog, 20000, true); n != 20000 {
		t.Fatalf("the hog's unbans: %d accepted, want 20000", n)
	}
	admin := hog
	admin.Peer = "admin"
	if res := unban(t, admin, "203.0.113.7\n198.51.100.7\n"); res.Accepted != 2 {
		t.Errorf("the admin's unbans into the memory the hog filled: %+v, want both written", res)
	}
	if res := unban(t, hog, addrs(20000, 1)); res.Limited != 1 {
		t.Errorf("the hog's next unban, over its share of a full memory: %+v, want it rate-limited", res)
	}
}

// TestUnbanStaleOnlyWhereLifted: an unban of an address that has no ban
// here holds back the unbanning peer's own bans of it, and no other
// peer's; one that lifts a ban holds back every peer's. Unbanning again
// an address the first unban lifted lifts nothing, so the attack of issue
// 25 (unban the addresses to shield, again every window) shields nothing
// from the other peers.
func TestUnbanStaleOnlyWhereLifted(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hog := testConfig(t, &now)
	hog.Peer, hog.AllowUnban = "hog", true
	web2, web3 := hog, hog
	web2.Peer, web2.AllowUnban = "web2", false
	web3.Peer, web3.AllowUnban = "web3", false
	stale := []record.Refusal{record.ErrStale}

	// Never banned here.
	unban(t, hog, "198.51.100.9\n")
	now = now.Add(time.Minute)
	if res := accept(t, web2, "198.51.100.9\n"); res.Accepted != 1 {
		t.Errorf("another peer's ban of an address the unban lifted nothing of: %+v, want it accepted", res)
	}
	if res := accept(t, hog, "198.51.100.10\n"); res.Accepted != 1 {
		t.Fatalf("a ban of another address: %+v", res)
	}

	// Banned here (by web2 just now, and by hog): the unban lifts them.
	now = now.Add(time.Minute)
	unban(t, hog, "198.51.100.9\n198.51.100.10\n")
	now = now.Add(time.Minute)
	for _, c := range []Config{web3, hog} {
		if res := accept(t, c, "198.51.100.9\n198.51.100.10\n"); res.Accepted != 0 || !reflect.DeepEqual(reasons(res), []record.Refusal{record.ErrStale, record.ErrStale}) {
			t.Errorf("%s's bans after an unban that lifted them: %+v, want both stale", c.Peer, res)
		}
	}

	// Unbanned again after the window, with no ban since: nothing to lift.
	now = now.Add(DefaultUnbanWindow)
	unban(t, hog, "198.51.100.9\n")
	now = now.Add(time.Minute)
	if res := accept(t, web3, "198.51.100.9\n"); res.Accepted != 1 {
		t.Errorf("another peer's ban after a second unban that lifted nothing: %+v, want it accepted", res)
	}
	if res := accept(t, hog, "198.51.100.9\n"); !reflect.DeepEqual(reasons(res), stale) {
		t.Errorf("the unbanning peer's own ban: %+v, want it stale", res)
	}
}

// TestUnbanShieldAttack is issue 25's attack at scale: a peer that may
// unban unbans 1,200 addresses never banned here; the other peers' bans of
// them all go through.
func TestUnbanShieldAttack(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hog := testConfig(t, &now)
	hog.Peer, hog.AllowUnban = "hog", true
	web2 := hog
	web2.Peer, web2.AllowUnban = "web2", false
	if n := flood(t, hog, 1200, true); n != 1200 {
		t.Fatalf("%d unbans accepted, want 1200", n)
	}
	now = now.Add(time.Minute)
	res := accept(t, web2, addrs(0, 1200))
	if res.Accepted != 1200 {
		t.Errorf("web2's bans of the addresses the hog unbanned: %d accepted, %d refused (%v...), want all accepted",
			res.Accepted, len(res.Refused), fmt.Sprint(reasons(Result{Refused: res.Refused[:min(3, len(res.Refused))]})))
	}
}
