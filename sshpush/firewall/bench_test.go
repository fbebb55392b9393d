package firewall

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/testkit/netns"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// BenchmarkFastPath measures the fast path in a namespace of its own:
// "append" is from N ban lines appended to the log to all N in the kernel
// set (one Run of a started engine: read, decide, state file, one
// transaction, cursor); "restore" is a Start after a reboot (the table
// gone) with N bans in force in the state file, until all are back.
//
//	CI=true go test -run '^$' -bench FastPath ./sshpush/firewall/
func BenchmarkFastPath(b *testing.B) {
	testenv.Need(b, testenv.Command("nft", "nftables"))
	ns := netns.New(b)
	set, err := nftset.Open(ns.Fd())
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	fresh := func(b *testing.B) Config {
		dir := b.TempDir()
		st := filepath.Join(dir, "state")
		if err := os.Mkdir(st, 0o700); err != nil {
			b.Fatal(err)
		}
		log := filepath.Join(dir, "received.log")
		if err := os.WriteFile(log, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		return Config{Log: log, State: filepath.Join(st, "cursor"), Jails: kernelJails(b)}
	}
	for _, n := range []int{1000, 10000, 20000} {
		lines, _ := banLines(b, 0, n, time.Now())
		var text []byte
		for _, l := range lines {
			text = append(append(text, l...), '\n')
		}
		b.Run(fmt.Sprintf("append/%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				cfg := fresh(b)
				if err := set.Remove(); err != nil {
					b.Fatal(err)
				}
				e, _, err := Start(context.Background(), cfg, set)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := os.WriteFile(cfg.Log, text, 0o644); err != nil {
					b.Fatal(err)
				}
				rep, err := e.Run(context.Background())
				if err != nil || rep.Added != n {
					b.Fatalf("%+v, %v", rep, err)
				}
				b.StopTimer()
				e.Close()
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("restore/%d", n), func(b *testing.B) {
			cfg := fresh(b)
			if err := os.WriteFile(cfg.Log, text, 0o644); err != nil {
				b.Fatal(err)
			}
			e, _, err := Start(context.Background(), cfg, set)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			e.Close()
			for b.Loop() {
				b.StopTimer()
				if err := set.Remove(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				e, rep, err := Start(context.Background(), cfg, set)
				if err != nil || rep.Restored != n {
					b.Fatalf("%+v, %v", rep, err)
				}
				b.StopTimer()
				e.Close()
				b.StartTimer()
			}
		})
	}
}
