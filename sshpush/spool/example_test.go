package spool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/spool"
)

// A push queues records once for all peers; a sender delivers each peer's
// queue and moves its cursor only after the peer acknowledged.
func Example() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// banpush push: one append and one fsync, whatever the number of peers.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := record.Record{Addr: netip.MustParseAddr("203.0.113.7"), Jail: "sshd"}
	if err := s.Append(ctx, time.Now(), r); err != nil {
		log.Fatal(err)
	}

	// The sender (package sender holds its lock around this): each peer
	// reads its queue from its own cursor.
	for _, peer := range []string{"web1", "web2"} {
		pos, err := s.Cursor(peer)
		var cfe *spool.CorruptFileError
		if errors.As(err, &cfe) {
			log.Print(err) // repaired; pos is usable
		} else if err != nil {
			log.Fatal(err)
		}
		for {
			b, err := s.Read(pos, 100, 64<<10)
			if err != nil {
				log.Fatal(err)
			}
			for _, k := range b.Skipped {
				log.Print(k)
			}
			for _, e := range b.Entries {
				fmt.Println(peer, e.Record) // deliver the batch here
			}
			// Only after the peer's answer:
			if err := s.Advance(peer, b.Next); err != nil {
				log.Fatal(err)
			}
			pos = b.Next
			if !b.More {
				break
			}
		}
	}
	// Segments every peer has passed go; so do the cursors of peers that
	// are no longer configured.
	if err := s.Compact([]string{"web1", "web2"}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// web1 203.0.113.7 jail=sshd
	// web2 203.0.113.7 jail=sshd
}
