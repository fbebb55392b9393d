package receive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
)

// logLine is what the fail2ban filter matches, as a Go regexp: the filter's
// failregex with <ADDR> spelled out and the timestamp in front.
var logLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d banpush: ban ([0-9a-f.:]+) peer=[A-Za-z0-9._-]{1,64}(?: jail=[A-Za-z0-9._-]{1,64})?(?: time=[1-9][0-9]{0,11})?(?: bantime=(?:-1|[1-9][0-9]{0,9}))?$`)

// FuzzAccept feeds whole batches to the receiver. Whatever the bytes, it
// must not panic, must account for every line, must write exactly the
// accepted lines, and every line it writes must match the filter and name
// an address the policy accepts.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7\n",
		"203.0.113.7 jail=sshd time=1700000000 bantime=600\n2001:db8::1\n",
		"127.0.0.1\n10.0.0.1\n203.0.113.7\n203.0.113.7\n",
		"fe80::1%\nid\n",
		"\n\n\n",
		"203.0.113.7\r\n",
		"::ffff:203.0.113.9 bantime=-1",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, batch []byte) {
		cfg := fuzzConfig(dir)
		res, err := Accept(context.Background(), cfg, bytes.NewReader(batch))
		if err != nil {
			if len(batch) <= wire.MaxBatchBytes && bytes.Count(batch, []byte{'\n'}) < wire.MaxRecords {
				t.Fatalf("small batch failed: %v", err)
			}
			return
		}
		n := bytes.Count(batch, []byte{'\n'})
		if len(batch) > 0 && batch[len(batch)-1] != '\n' {
			n++
		}
		if res.Accepted+len(res.Refused) != n {
			t.Fatalf("accepted %d + refused %d != %d lines", res.Accepted, len(res.Refused), n)
		}
		if n := checkLog(t, cfg.LogPath); n != res.Accepted {
			t.Fatalf("log has %d lines, accepted %d", n, res.Accepted)
		}
	})
}

// fuzzConfig is a receiver writing a fresh log in dir, with a small bucket.
func fuzzConfig(dir string) Config {
	log := filepath.Join(dir, "received.log")
	os.Remove(log)
	os.Remove(log + ".state")
	return Config{
		Peer: "web1", LogPath: log, MaxBurst: 5, MaxPerMinute: 1, LockTimeout: time.Second,
		Now: func() time.Time { return time.Unix(1_800_000_000, 0).UTC() },
	}
}

// checkLog fails unless every line of the log matches the filter and names
// a canonical address the policy accepts; it returns the number of lines.
func checkLog(t *testing.T, log string) int {
	t.Helper()
	out, _ := os.ReadFile(log)
	if len(out) == 0 {
		return 0
	}
	var pol record.Policy
	lines := bytes.Split(bytes.TrimSuffix(out, []byte{'\n'}), []byte{'\n'})
	for _, l := range lines {
		m := logLine.FindSubmatch(l)
		if m == nil {
			t.Fatalf("log line does not match the filter: %q", l)
		}
		a, err := record.ParseAddr(string(m[1]))
		if err != nil || pol.Check(a) != nil || a.String() != string(m[1]) {
			t.Fatalf("log line names a refused or non-canonical address: %q", l)
		}
	}
	return len(lines)
}

// FuzzServe feeds whole streams to the receiver: no panic, one answer per
// complete batch at most, and exactly the accepted lines in the log, each
// matching the filter.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7\n\n",
		"203.0.113.7\n203.0.113.8\n\n2001:db8::1 jail=sshd\n\n",
		"\n\n\n",
		"203.0.113.7\n\n203.0.11",
		"127.0.0.1\n\n10.0.0.1\n203.0.113.9\n\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := fuzzConfig(dir)
		var out bytes.Buffer
		err := Serve(context.Background(), cfg, bytes.NewReader(in), &out, io.Discard, StreamLimits{MaxShown: 3})
		if err != nil && !errors.Is(err, wire.ErrBatchTooLarge) {
			t.Fatalf("Serve: %v", err)
		}
		accepted := 0
		for _, l := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte{'\n'}), []byte{'\n'}) {
			if len(l) == 0 {
				continue
			}
			var a, r int
			if _, err := fmt.Sscanf(string(l), "banpush-v1 ok accepted=%d refused=%d", &a, &r); err != nil {
				t.Fatalf("bad answer %q", l)
			}
			accepted += a
		}
		// Every answered batch ended with an empty line of its own.
		if answers := bytes.Count(out.Bytes(), []byte{'\n'}); answers > bytes.Count(in, []byte{'\n'}) {
			t.Fatalf("%d answers for this input", answers)
		}
		if n := checkLog(t, cfg.LogPath); n != accepted {
			t.Fatalf("log has %d lines, answers accepted %d", n, accepted)
		}
	})
}

// unbanLine is the unban line as apply-unbans reads it, as a Go regexp.
var unbanLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d banpush: unban ([0-9a-f.:]+) peer=[A-Za-z0-9._-]{1,64}(?: jail=[A-Za-z0-9._-]{1,64})?(?: time=[1-9][0-9]{0,11})?$`)

// FuzzUnban feeds whole unban batches to a receiver that allows unbans:
// no panic, every line accounted for, exactly the accepted unbans in the
// log, each of the one shape apply-unbans reads, naming a canonical address
// the policy accepts; and the unban memory names exactly those addresses.
func FuzzUnban(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7\n",
		"203.0.113.7 jail=sshd time=1700000000 bantime=600\n2001:db8::1\n",
		"127.0.0.1\n10.0.0.1\n203.0.113.7\n203.0.113.7\n",
		"203.0.113.7;rm -rf /\n203.0.113.8 peer=x\n::ffff:203.0.113.9\n1.2.3.0/24\n",
		"fe80::1%eth0\n\x00\n\xff\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, batch []byte) {
		cfg := fuzzConfig(dir)
		cfg.AllowUnban = true
		os.Remove(cfg.LogPath + ".unbans")
		os.Remove(cfg.LogPath + ".history")
		res, err := Unban(context.Background(), cfg, bytes.NewReader(batch))
		if err != nil {
			if len(batch) <= wire.MaxBatchBytes && bytes.Count(batch, []byte{'\n'}) < wire.MaxRecords {
				t.Fatalf("small batch failed: %v", err)
			}
			return
		}
		out, _ := os.ReadFile(cfg.LogPath)
		lines := bytes.Split(bytes.TrimSuffix(out, []byte{'\n'}), []byte{'\n'})
		if len(out) == 0 {
			lines = nil
		}
		if len(lines) != res.Accepted {
			t.Fatalf("log has %d lines, accepted %d", len(lines), res.Accepted)
		}
		var pol record.Policy
		for _, l := range lines {
			m := unbanLine.FindSubmatch(l)
			if m == nil {
				t.Fatalf("unban line of another shape: %q", l)
			}
			a, err := record.ParseAddr(string(m[1]))
			if err != nil || pol.Check(a) != nil || a.String() != string(m[1]) {
				t.Fatalf("unban line names a refused or non-canonical address: %q", l)
			}
		}
		mem, err := loadUnbans(cfg.LogPath, cfg.Now())
		if err != nil || len(mem.at) != res.Accepted || mem.n != res.Accepted {
			t.Fatalf("unban memory: %d addresses, %d entries, %v; accepted %d", len(mem.at), mem.n, err, res.Accepted)
		}
	})
}

// FuzzFail feeds failure reports to a receiver with the fleet policy on,
// as one of three hosts with a small bucket, the other two having
// reported already: no panic, every line accounted for, nothing in the log
// but fleet lines that parse, at most one per accepted report, and the
// memory beside it always readable.
func FuzzFail(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7 jail=sshd time=1800000000 failures=4\n",
		"203.0.113.7 time=1799990000 failures=1000\n2001:db8::1 failures=1\n203.0.113.7\n",
		"203.0.113.7 bantime=600 failures=0\n10.0.0.1 failures=3\n",
		"203.0.113.7 time=9999999999 failures=12\n",
		"\n\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, batch []byte) {
		cfg := fuzzConfig(dir)
		os.Remove(cfg.LogPath + ".fleet")
		cfg.Fleet = FleetPolicy{Failures: 12, Hosts: 3, Window: time.Hour}
		for _, h := range []string{"h2", "h3"} {
			other := cfg
			other.Peer, other.MaxBurst = h, 100
			if _, err := Fail(context.Background(), other, strings.NewReader("203.0.113.7 failures=4\n2001:db8::1 failures=4\n")); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Fail(context.Background(), cfg, bytes.NewReader(batch))
		if err != nil {
			if len(batch) <= wire.MaxBatchBytes && bytes.Count(batch, []byte{'\n'}) < wire.MaxRecords {
				t.Fatalf("small batch failed: %v", err)
			}
			return
		}
		n := bytes.Count(batch, []byte{'\n'})
		if len(batch) > 0 && batch[len(batch)-1] != '\n' {
			n++
		}
		if res.Accepted+len(res.Refused) != n || res.Fleet > res.Accepted {
			t.Fatalf("accepted %d + refused %d != %d lines, or %d fleet lines", res.Accepted, len(res.Refused), n, res.Fleet)
		}
		out, _ := os.ReadFile(cfg.LogPath)
		lines := 0
		for l := range bytes.Lines(out) {
			p, err := logline.Parse(bytes.TrimSuffix(l, []byte{'\n'}))
			if err != nil || p.Kind != logline.Fleet || p.Hosts < 3 || p.Record.Failures < 12 {
				t.Fatalf("log line %q: %+v, %v", l, p, err)
			}
			lines++
		}
		if lines != res.Fleet {
			t.Fatalf("log has %d fleet lines, the result counts %d", lines, res.Fleet)
		}
		if _, err := loadFleet(cfg.LogPath, cfg.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	})
}
