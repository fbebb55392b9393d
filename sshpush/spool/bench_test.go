package spool

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

// BenchmarkAppend is what one `banpush push` of one address pays in the
// spool: lock, one write, fsync, unlock. The spool lives under the test's
// temporary directory (set TMPDIR to measure another file system).
func BenchmarkAppend(b *testing.B) {
	s := newSpool(b, Options{})
	s.noSync = false
	benchAppend(b, s)
}

// BenchmarkAppendNoSync is the same without the fsync: the spool's own
// cost, without the disk's.
func BenchmarkAppendNoSync(b *testing.B) {
	benchAppend(b, newSpool(b, Options{}))
}

func benchAppend(b *testing.B, s *Spool) {
	ctx := context.Background()
	r := rec(1)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Append(ctx, t0, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAppend adds Open, as each push process does.
func BenchmarkOpenAppend(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "spool")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Append(ctx, t0, rec(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads a batch of 1000 records, as the sender does per peer.
func BenchmarkRead(b *testing.B) {
	s := newSpool(b, Options{})
	const n = 1000
	rs := make([]record.Record, n)
	for i := range rs {
		rs[i] = rec(i)
	}
	if err := s.Append(context.Background(), t0, rs...); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(segFile(s, 1))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		batch, err := s.Read(Position{}, n, 1<<20)
		if err != nil || len(batch.Entries) != n {
			b.Fatalf("got %d entries, %v", len(batch.Entries), err)
		}
	}
}

// BenchmarkPending counts 10000 queued records, as `banpush status` does
// per peer.
func BenchmarkPending(b *testing.B) {
	s := newSpool(b, Options{})
	rs := make([]record.Record, 1000)
	for i := range rs {
		rs[i] = rec(i)
	}
	for range 10 {
		if err := s.Append(context.Background(), t0, rs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, _, err := s.Pending("p"); err != nil || n != 10000 {
			b.Fatalf("got %d, %v", n, err)
		}
	}
}
