package spool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// The test binary doubles as a helper process: with SPOOL_TEST_HELPER set
// it runs one of the helpers below instead of the tests, so that appends
// and cursor updates can come from other processes and be killed with -9.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SPOOL_TEST_HELPER"); mode != "" {
		os.Exit(helperMain(mode, os.Getenv("SPOOL_TEST_DIR"), os.Getenv("SPOOL_TEST_ARG")))
	}
	if code, ran := testenv.Sandbox(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func helperMain(mode, dir, arg string) int {
	s, err := Open(dir, Options{SegmentSize: 4096})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case "append":
		// arg is "ID N": append records ID*100000+2i and +2i+1, N times (or
		// forever if N < 0), with fsync; print each pair's first number once
		// it is acknowledged.
		var id, n int
		fmt.Sscan(arg, &id, &n)
		for i := 0; n < 0 || i < n; i++ {
			k := id*100000 + 2*i
			if err := s.Append(context.Background(), t0, rec(k), rec(k+1)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Fprintln(out, k)
			out.Flush()
		}
	case "advance":
		// Move cursor "p" one record at a time; print each new position
		// once Advance has returned.
		pos := Position{}
		for {
			b, err := s.Read(pos, 1, 1<<20)
			if err != nil || !b.More {
				fmt.Fprintln(os.Stderr, "read:", err)
				return 1
			}
			if err := s.Advance("p", b.Next); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			pos = b.Next
			fmt.Fprintln(out, pos.Seg, pos.Off)
			out.Flush()
		}
	}
	return 0
}

func helper(t *testing.T, mode, dir, arg string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SPOOL_TEST_HELPER="+mode, "SPOOL_TEST_DIR="+dir, "SPOOL_TEST_ARG="+arg)
	cmd.Stderr = os.Stderr
	return cmd
}

// checkAppended checks that every record of the given pairs is in ents
// exactly once and that each writer's records are in its order.
func checkAppended(t *testing.T, ents []Entry, acked map[int]bool) {
	t.Helper()
	seen := map[int]int{}
	lastOf := map[int]int{} // writer ID -> last k seen
	for _, e := range ents {
		k := int(e.Record.Time - rec(0).Time)
		seen[k]++
		if id := k / 100000; k%2 == 0 {
			if prev, ok := lastOf[id]; ok && prev >= k {
				t.Errorf("writer %d: record %d after %d", id, k, prev)
			}
			lastOf[id] = k
		}
	}
	for k := range acked {
		if seen[k] != 1 || seen[k+1] != 1 {
			t.Errorf("records %d and %d: seen %d and %d times, want once", k, k+1, seen[k], seen[k+1])
		}
	}
}

func TestConcurrentAppendGoroutines(t *testing.T) {
	s := newSpool(t, Options{SegmentSize: 4096})
	const writers, n = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for id := 1; id <= writers; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				k := id*100000 + 2*i
				if err := s.Append(context.Background(), t0, rec(k), rec(k+1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ents, skipped, _ := readAll(t, s, Position{})
	if len(skipped) != 0 || len(ents) != writers*n*2 {
		t.Fatalf("got %d records and skipped %v, want %d and none", len(ents), skipped, writers*n*2)
	}
	acked := map[int]bool{}
	for id := 1; id <= writers; id++ {
		for i := 0; i < n; i++ {
			acked[id*100000+2*i] = true
		}
	}
	checkAppended(t, ents, acked)
}

func TestConcurrentAppendProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const procs, n = 8, 25
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = helper(t, "append", dir, strconv.Itoa(i+1)+" "+strconv.Itoa(n))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	s, err := Open(dir, Options{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if segs, _ := s.segments(); len(segs) < 3 {
		t.Errorf("got segments %v, want several (roll-over under contention)", segs)
	}
	ents, skipped, _ := readAll(t, s, Position{})
	if len(skipped) != 0 || len(ents) != procs*n*2 {
		t.Fatalf("got %d records and skipped %v, want %d and none", len(ents), skipped, procs*n*2)
	}
	acked := map[int]bool{}
	for id := 1; id <= procs; id++ {
		for i := 0; i < n; i++ {
			acked[id*100000+2*i] = true
		}
	}
	checkAppended(t, ents, acked)
}

// TestKillDuringAppend kills appending processes at random moments: every
// append a process reported done must read back, whatever state the
// journal was left in, and later appends must read back too.
func TestKillDuringAppend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	acked := map[int]bool{}
	for round := 0; round < 4; round++ {
		var cmds []*exec.Cmd
		var scanners []*bufio.Scanner
		for id := 1; id <= 3; id++ {
			c := helper(t, "append", dir, strconv.Itoa(round*3+id)+" -1")
			stdout, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, c)
			scanners = append(scanners, bufio.NewScanner(stdout))
		}
		// Let each process acknowledge a random number of appends, then
		// kill it while it is in the middle of its next ones.
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, sc := range scanners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got []int
				for want := 1 + rand.IntN(20); want > 0 && sc.Scan(); want-- {
					k, _ := strconv.Atoi(sc.Text())
					got = append(got, k)
				}
				cmds[i].Process.Kill()
				for sc.Scan() { // appends acknowledged before the kill landed
					k, _ := strconv.Atoi(sc.Text())
					got = append(got, k)
				}
				cmds[i].Wait()
				mu.Lock()
				for _, k := range got {
					acked[k] = true
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	s, err := Open(dir, Options{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s.noSync = true
	appendN(t, s, 60000, 2) // records of writer 0
	ents, skipped, _ := readAll(t, s, Position{})
	if len(skipped) != 0 {
		t.Logf("skipped after kills: %v", skipped) // a kill can tear a write; that costs the torn line only
	}
	checkAppended(t, ents, acked)
	if last := ents[len(ents)-1].Record; last != rec(60001) {
		t.Errorf("last record: got %v, want %v", last, rec(60001))
	}
}

// TestKillDuringAdvance kills a process that moves a cursor: the cursor
// read back is the last one it reported, or the one it was writing, never
// something else.
func TestKillDuringAdvance(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s.noSync = true
	appendN(t, s, 0, 400)
	ents, _, _ := readAll(t, s, Position{})
	order := map[Position]int{}
	for i, e := range ents {
		order[e.Next] = i
	}
	for round := 0; round < 4; round++ {
		if err := os.Remove(s.path(cursorDir, "p")); err != nil && round > 0 {
			t.Fatal(err)
		}
		c := helper(t, "advance", dir, "")
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var last Position
		for want := 1 + rand.IntN(30); want > 0 && sc.Scan(); want-- {
			fmt.Sscan(sc.Text(), &last.Seg, &last.Off)
		}
		c.Process.Kill()
		for sc.Scan() {
			fmt.Sscan(sc.Text(), &last.Seg, &last.Off)
		}
		c.Wait()
		got, err := s.Cursor("p")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		i, ok := order[got]
		if !ok || i != order[last] && i != order[last]+1 {
			t.Errorf("round %d: cursor %v after the last reported %v; want it or the next record's", round, got, last)
		}
	}
}
