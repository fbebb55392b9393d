package receive

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
)

// TestPeerIdentity: the same host authorized under two spellings of its
// name (a plain key with --peer web1, a certificate with the key ID
// WEB1.example.com) is one peer: one report toward a quorum, one token
// bucket, one set of session slots.
func TestPeerIdentity(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	plain := quorumConfig(t, &now, "web1")
	cert := plain
	cert.Peer = "WEB1.example.com"
	accept(t, plain, "203.0.113.7\n")
	if res := accept(t, cert, "203.0.113.7\n"); res.Repeated != 1 {
		t.Errorf("the certificate's report after the plain key's: %+v, want it repeated", res)
	}
	if got := logLines(t, plain.LogPath, logline.Quorum); len(got) != 0 {
		t.Fatalf("one host under two spellings made a quorum: %q", got)
	}
	web2 := plain
	web2.Peer = "web2.example.com"
	accept(t, web2, "203.0.113.7\n")
	if got := logLines(t, plain.LogPath, logline.Quorum); len(got) != 1 || !strings.HasSuffix(got[0], " peer=web2.example.com reports=2") {
		t.Errorf("quorum lines %q, want one from web2 with 2 reports", got)
	}

	// One bucket: what one spelling spends, the other does not get.
	full := testConfig(t, &now)
	full.MaxBurst, full.MaxPerMinute = 3, 0
	accept(t, full, addrs(0, 3))
	other := full
	other.Peer = "Web1.Example.COM"
	if res := accept(t, other, addrs(10, 1)); res.Accepted != 0 || res.Limited != 1 {
		t.Errorf("another spelling after the burst: %+v, want it rate-limited", res)
	}
	if got := logLines(t, full.LogPath, logline.Ban); len(got) != 3 || !strings.HasSuffix(got[0], " peer=web1") {
		t.Errorf("ban lines %q, want 3 under the name as authorized", got)
	}

	if runtime.GOOS != "linux" {
		return
	}
	s, err := AcquireSession(full.LogPath, "web1", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if _, err := AcquireSession(full.LogPath, "WEB1.example.com", 1); !errors.Is(err, ErrTooManySessions) {
		t.Errorf("a session under another spelling while web1 holds the one slot: %v, want ErrTooManySessions", err)
	}
}
