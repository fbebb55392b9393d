package receive_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
)

// BenchmarkAccept handles one "banpush-v1 ban" batch against a log in the
// test's temporary directory (set TMPDIR to measure another file system):
// parse, policy, token bucket, one write under the lock and fsync. It is
// the receiver's work per batch, without the process start sshd adds.
func BenchmarkAccept(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			var batch []byte
			for i := range n {
				batch = fmt.Appendf(batch, "2001:db8::%x:%x jail=sshd time=1700000000 bantime=600\n", i>>8, i&0xff)
			}
			now := time.Unix(1700000000, 0)
			cfg := receive.Config{
				Peer:         "bench",
				LogPath:      filepath.Join(b.TempDir(), "received.log"),
				MaxBurst:     1 << 30,
				MaxPerMinute: 1 << 30,
				LockTimeout:  receive.DefaultLockTimeout,
				Now:          func() time.Time { return now },
			}
			ctx := context.Background()
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				res, err := receive.Accept(ctx, cfg, bytes.NewReader(batch))
				if err != nil || res.Accepted != n {
					b.Fatalf("Accept: got %d accepted, %v; want %d", res.Accepted, err, n)
				}
			}
		})
	}
}
