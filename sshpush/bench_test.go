package sshpush

import (
	"fmt"
	"testing"

	"golang.org/x/crypto/ssh"
)

// benchTarget starts the in-process receiver and returns a Target for it.
func benchTarget(b *testing.B) Target {
	b.Helper()
	key, signer, _ := keyFile(b, b.TempDir(), "id_ed25519", "")
	s := startServer(b, serverConfig{authorized: []ssh.PublicKey{signer.PublicKey()}})
	return s.target(b, []string{s.KnownHostsLine(s.HostKeys[0].PublicKey())}, key)
}

// BenchmarkBanWarm measures one batch as a new session on an open
// connection: what a lingering sender pays per batch.
func BenchmarkBanWarm(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			c := dial(b, benchTarget(b), Options{})
			var batch []byte
			for i := range n {
				batch = fmt.Appendf(batch, "203.0.%d.%d jail=sshd time=1700000000 bantime=600\n", i/256, i%256)
			}
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				ack, err := c.Ban(b.Context(), batch)
				if err != nil || ack.Accepted != n {
					b.Fatalf("Ban: got %+v, %v, want %d accepted", ack, err, n)
				}
			}
		})
	}
}

// BenchmarkDialHandshake measures a new connection: TCP, key exchange,
// host key check and authentication.
func BenchmarkDialHandshake(b *testing.B) {
	target := benchTarget(b)
	for b.Loop() {
		c, err := Dial(b.Context(), target, Options{})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
