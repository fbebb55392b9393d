package record_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

// benchRecords are records as a sender queues them: the fields fail2ban
// fills in, IPv4 and IPv6 mixed.
func benchRecords(n int) []record.Record {
	rs := make([]record.Record, n)
	for i := range rs {
		a := netip.AddrFrom4([4]byte{203, 0, byte(113 + i%2), byte(i)})
		if i%2 == 1 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		rs[i] = record.Record{Addr: a, Jail: "sshd", Time: 1700000000 + int64(i), BanTime: 600}
	}
	return rs
}

// BenchmarkParse parses one record line, as a receiver does for every
// line of a batch.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		line string
	}{
		{name: "ipv4-bare", line: "203.0.113.7"},
		{name: "ipv4-full", line: "203.0.113.7 jail=sshd time=1700000000 bantime=600"},
		{name: "ipv6-full", line: "2001:db8::1:7 jail=sshd time=1700000000 bantime=-1"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			line := []byte(tc.line)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := record.Parse(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendText encodes a batch, one record a line, as the sender
// does before each "banpush-v1 ban" session.
func BenchmarkAppendText(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			rs := benchRecords(n)
			var buf []byte
			for _, r := range rs {
				buf = append(r.AppendText(buf), '\n')
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for _, r := range rs {
					buf = append(r.AppendText(buf), '\n')
				}
			}
		})
	}
}
