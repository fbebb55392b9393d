package spool

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

func TestAppendItems(t *testing.T) {
	s := newSpool(t, Options{})
	ctx := context.Background()
	x := rec(1)
	items := []Item{
		{Record: x},
		{Kind: Unban, Record: x},
		{To: "web2", Record: rec(2)},
		{Kind: Unban, To: "web3", Record: rec(3)},
		{Kind: Failure, Record: record.Record{Addr: x.Addr, Jail: "sshd", Time: 1_800_000_000, Failures: 3}},
	}
	if err := s.AppendItems(ctx, t0, items...); err != nil {
		t.Fatal(err)
	}
	ents, skipped, _ := readAll(t, s, Position{})
	if len(skipped) != 0 || len(ents) != len(items) {
		t.Fatalf("got %d entries, %v skipped; want %d", len(ents), skipped, len(items))
	}
	for i, e := range ents {
		if e.Item != items[i] || !e.Queued.Equal(t0) {
			t.Errorf("entry %d: got %+v at %v, want %+v at %v", i, e.Item, e.Queued, items[i], t0)
		}
	}

	// Pending counts what is for the peer, but the ban of x its unban
	// cancelled (not the failure report queued after it): web2 has one
	// more than web1.
	for peer, want := range map[string]int{"web1": 2, "web2": 3, "web3": 3} {
		if n, _, err := s.Pending(peer); err != nil || n != want {
			t.Errorf("Pending(%s) = %d, %v; want %d", peer, n, err, want)
		}
	}

	for _, bad := range []Item{{To: "bad name", Record: x}, {To: "..", Record: x}, {Kind: 7, Record: x}} {
		if err := s.AppendItems(ctx, t0, bad); err == nil {
			t.Errorf("AppendItems(%+v) queued it", bad)
		}
	}
	if err := s.AppendItems(ctx, time.Unix(0, 0), items[0]); err == nil {
		t.Error("AppendItems at the epoch queued it")
	}
}

func TestCancels(t *testing.T) {
	s := newSpool(t, Options{})
	ctx := context.Background()
	x, y := rec(1), rec(2)
	c, err := s.LoadCancels(nil)
	if err != nil || c.Len() != 0 {
		t.Fatalf("no cancels file: got %d, %v", c.Len(), err)
	}

	before, unban, after := t0, t0.Add(time.Second), t0.Add(2*time.Second)
	if err := s.AppendItems(ctx, unban, Item{Kind: Unban, Record: x}); err != nil {
		t.Fatal(err)
	}
	c, err = s.LoadCancels(c)
	if err != nil || c.Len() != 1 {
		t.Fatalf("after an unban: got %d cancels, %v", c.Len(), err)
	}
	tests := []struct {
		name string
		e    Entry
		want bool
	}{
		{"ban queued before", Entry{Item: Item{Record: x}, Queued: before}, true},
		{"ban queued with it", Entry{Item: Item{Record: x}, Queued: unban}, true},
		{"ban for one peer, queued before", Entry{Item: Item{To: "web2", Record: x}, Queued: before}, true},
		{"fresh ban after", Entry{Item: Item{Record: x}, Queued: after}, false},
		{"the unban itself", Entry{Item: Item{Kind: Unban, Record: x}, Queued: unban}, false},
		{"another address", Entry{Item: Item{Record: y}, Queued: before}, false},
	}
	for _, tc := range tests {
		if got := c.Cancelled(tc.e); got != tc.want {
			t.Errorf("%s: Cancelled = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Unchanged file: the same Cancels, not read again. A later unban
	// moves the cancel forward; an earlier one does not move it back.
	if again, _ := s.LoadCancels(c); again != c {
		t.Error("LoadCancels read an unchanged file again")
	}
	if err := s.AppendItems(ctx, after, Item{Kind: Unban, Record: x}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendItems(ctx, before, Item{Kind: Unban, Record: x}, Item{Kind: Unban, Record: y}); err != nil {
		t.Fatal(err)
	}
	c, _ = s.LoadCancels(c)
	if !c.Cancelled(Entry{Item: Item{Record: x}, Queued: after}) || c.Len() != 2 {
		t.Errorf("after a later unban: ban at %v not cancelled, or %d cancels", after, c.Len())
	}
	if c.Cancelled(Entry{Item: Item{Record: y}, Queued: unban}) {
		t.Error("a ban queued after the unban of y is cancelled")
	}

	// An unban for one peer cancels nothing: the cancels are for all.
	z := rec(3)
	if err := s.AppendItems(ctx, after, Item{Kind: Unban, To: "web2", Record: z}); err != nil {
		t.Fatal(err)
	}
	c, _ = s.LoadCancels(c)
	if c.Cancelled(Entry{Item: Item{Record: z}, Queued: before}) {
		t.Error("an unban for one peer cancelled a ban for every peer")
	}
}

func TestCancelsFile(t *testing.T) {
	s := newSpool(t, Options{})
	ctx := context.Background()
	// Damaged lines are dropped; the others count.
	x := netip.MustParseAddr("198.51.100.7")
	data := "garbage\n198.51.100.7 " + strconv.FormatInt(t0.UnixNano(), 10) + "\n" +
		"198.51.100.8 -1\n198.51.100.9 01\nfe80::1%eth0 5\n::ffff:198.51.100.10 " + strconv.FormatInt(t0.UnixNano(), 10) + "\n"
	if err := os.WriteFile(s.path(cancelsName), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := s.LoadCancels(nil)
	if err != nil || c.Len() != 2 {
		t.Fatalf("got %d cancels, %v; want 2", c.Len(), err)
	}
	if !c.Cancelled(Entry{Item: Item{Record: record.Record{Addr: x}}, Queued: t0}) {
		t.Error("the good line does not cancel")
	}
	if !c.Cancelled(Entry{Item: Item{Record: record.Record{Addr: netip.MustParseAddr("198.51.100.10")}}, Queued: t0}) {
		t.Error("the mapped address does not cancel its unmapped form")
	}

	// Entries past the retention are dropped at the next write.
	old := t0.Add(-cancelRetention - time.Hour)
	if err := os.WriteFile(s.path(cancelsName), []byte("198.51.100.7 "+strconv.FormatInt(old.UnixNano(), 10)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendItems(ctx, t0, Item{Kind: Unban, Record: record.Record{Addr: netip.MustParseAddr("198.51.100.8")}}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(s.path(cancelsName))
	if err != nil || strings.Contains(string(got), "198.51.100.7") || !strings.Contains(string(got), "198.51.100.8 ") {
		t.Errorf("cancels file after retention: %q, %v", got, err)
	}
	if fi, err := os.Stat(s.path(cancelsName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cancels file mode: %v, %v", fi.Mode(), err)
	}
}

// TestPendingLeavesOutCancelled: a ban that an unban cancelled is not
// pending: no sender delivers it, and status must not count it queued.
func TestPendingLeavesOutCancelled(t *testing.T) {
	s := newSpool(t, Options{})
	ctx := context.Background()
	if err := s.AppendItems(ctx, t0, Item{Record: rec(1)}, Item{Record: rec(2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendItems(ctx, t0.Add(time.Second), Item{Kind: Unban, Record: rec(1)}); err != nil {
		t.Fatal(err)
	}
	n, oldest, err := s.Pending("web1")
	if err != nil || n != 2 || !oldest.Equal(t0) {
		t.Errorf("Pending = %d, %v, %v; want 2 (the other ban and the unban), oldest %v", n, oldest, err, t0)
	}
}

// TestAppendItemsCancelFails: when the unbans are in the journal but the
// cancels file cannot be written, the error says that they were queued
// (ErrNotCancelled), so that nobody reads it as "nothing was queued".
func TestAppendItemsCancelFails(t *testing.T) {
	s := newSpool(t, Options{})
	if err := os.Mkdir(s.path(cancelsName), 0o700); err != nil {
		t.Fatal(err)
	}
	err := s.AppendItems(context.Background(), t0, Item{Kind: Unban, Record: rec(1)})
	if !errors.Is(err, ErrNotCancelled) {
		t.Fatalf("got %v, want ErrNotCancelled", err)
	}
	if ents, _, _ := readAll(t, s, Position{}); len(ents) != 1 || ents[0].Kind != Unban {
		t.Errorf("journal %+v, want the unban", ents)
	}
}
