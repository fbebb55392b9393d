package nftset_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/nftset"
)

// BenchmarkLoad measures what chose this package's way into the kernel:
// loading a batch of addresses with their timeouts into the empty sets,
// through netlink from Go (Set.Add: one transaction) and through one
// 'nft -f' of the same batch (the nft CLI's own transaction, started as
// a program, as a service without the library would). Each run starts
// from an empty set, in a namespace of the benchmark's own.
//
//	CI=true go test -run '^$' -bench Load ./sshpush/nftset/
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1000, 10000, 20000} {
		els := elements(n)
		b.Run(fmt.Sprintf("netlink/%d", n), func(b *testing.B) {
			s, _ := open(b)
			for b.Loop() {
				b.StopTimer()
				if err := s.Remove(); err != nil {
					b.Fatal(err)
				}
				if err := s.Ensure(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := s.Add(els, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("nft-f/%d", n), func(b *testing.B) {
			s, ns := open(b)
			file := filepath.Join(b.TempDir(), "batch.nft")
			if err := os.WriteFile(file, nftBatch(els), 0o600); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				if err := s.Remove(); err != nil {
					b.Fatal(err)
				}
				if err := s.Ensure(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				ns.Run(b, "nft", "-f", file)
			}
		})
	}
}

// nftBatch is els as one nft script: an add element statement a set.
func nftBatch(els []nftset.Element) []byte {
	var v4, v6 []string
	for _, e := range els {
		el := fmt.Sprintf("%s timeout %dms", e.Addr, e.Timeout.Milliseconds())
		if e.Addr.Is4() {
			v4 = append(v4, el)
		} else {
			v6 = append(v6, el)
		}
	}
	return fmt.Appendf(nil, "add element inet %s %s { %s }\nadd element inet %s %s { %s }\n",
		nftset.Table, nftset.SetV4, strings.Join(v4, ", "), nftset.Table, nftset.SetV6, strings.Join(v6, ", "))
}
