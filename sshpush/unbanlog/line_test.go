package unbanlog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/logline"
)

func TestParse(t *testing.T) {
	long := "2026-11-30T09:12:01+00:00 banpush: unban 203.0.113.7 peer=" + strings.Repeat("a", logline.MaxLen)
	tests := []struct {
		name, line string
		want       error
		addr, peer string
		jail       string
		time       int64
	}{
		{name: "full", line: "2026-11-30T09:12:01+00:00 banpush: unban 203.0.113.7 peer=web1 jail=sshd time=1764493921", addr: "203.0.113.7", peer: "web1", jail: "sshd", time: 1764493921},
		{name: "bare", line: "2026-11-30T09:12:01+01:00 banpush: unban 2001:db8::7 peer=web-1.example", addr: "2001:db8::7", peer: "web-1.example"},
		{name: "time only", line: "2026-11-30T09:12:01-05:30 banpush: unban 10.0.0.1 peer=a time=1", addr: "10.0.0.1", peer: "a", time: 1},
		{name: "ban line", line: "2026-11-30T09:12:01+00:00 banpush: ban 203.0.113.7 peer=web1", want: ErrOtherKind},
		{name: "report line", line: "2026-11-30T09:12:01+00:00 banpush: report 203.0.113.7 peer=web1", want: ErrOtherKind},
		{name: "quorum line", line: "2026-11-30T09:12:01+00:00 banpush: quorum 203.0.113.7 peer=web1 reports=2", want: ErrOtherKind},
		{name: "empty", line: "", want: ErrBadLine},
		{name: "no stamp", line: "banpush: unban 203.0.113.7 peer=web1", want: ErrBadLine},
		{name: "Z stamp", line: "2026-11-30T09:12:01Z banpush: unban 203.0.113.7 peer=web1", want: ErrBadLine},
		{name: "bad stamp", line: "2026-13-30T09:12:01+00:00 banpush: unban 203.0.113.7 peer=web1", want: ErrBadLine},
		{name: "other tag", line: "2026-11-30T09:12:01+00:00 banpush: unbanned 203.0.113.7 peer=web1", want: ErrBadLine},
		{name: "injection semicolon", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4;rm peer=web1", want: ErrBadLine},
		{name: "injection in peer", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=x$(id)", want: ErrBadLine},
		{name: "zone", line: "2026-11-30T09:12:01+00:00 banpush: unban fe80::1%eth0 peer=web1", want: ErrBadLine},
		{name: "prefix", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.0/24 peer=web1", want: ErrBadLine},
		{name: "mapped", line: "2026-11-30T09:12:01+00:00 banpush: unban ::ffff:1.2.3.4 peer=web1", want: ErrBadLine},
		{name: "not canonical v6", line: "2026-11-30T09:12:01+00:00 banpush: unban 2001:DB8::7 peer=web1", want: ErrBadLine},
		{name: "leading zeros", line: "2026-11-30T09:12:01+00:00 banpush: unban 001.2.3.4 peer=web1", want: ErrBadLine},
		{name: "hostname", line: "2026-11-30T09:12:01+00:00 banpush: unban example.com peer=web1", want: ErrBadLine},
		{name: "no peer", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4", want: ErrBadLine},
		{name: "empty peer", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=", want: ErrBadLine},
		{name: "double space", line: "2026-11-30T09:12:01+00:00 banpush: unban  1.2.3.4 peer=web1", want: ErrBadLine},
		{name: "trailing space", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 ", want: ErrBadLine},
		{name: "fields swapped", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 time=5 jail=sshd", want: ErrBadLine},
		{name: "duplicate jail", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 jail=a jail=b", want: ErrBadLine},
		{name: "unknown field", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 bantime=5", want: ErrBadLine},
		{name: "time zero", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 time=0", want: ErrBadLine},
		{name: "time leading zero", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 time=01", want: ErrBadLine},
		{name: "time negative", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 time=-1", want: ErrBadLine},
		{name: "time huge", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 time=999999999999", want: ErrBadLine},
		{name: "jail with slash", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1 jail=a/b", want: ErrBadLine},
		{name: "NUL", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4\x00 peer=web1", want: ErrBadLine},
		{name: "tab", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4\tpeer=web1", want: ErrBadLine},
		{name: "non-ASCII", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=wéb1", want: ErrBadLine},
		{name: "CR", line: "2026-11-30T09:12:01+00:00 banpush: unban 1.2.3.4 peer=web1\r", want: ErrBadLine},
		{name: "too long", line: long, want: ErrBadLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := Parse([]byte(tt.line))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if u.Addr.String() != tt.addr || u.Peer != tt.peer || u.Jail != tt.jail || u.Time != tt.time {
				t.Errorf("got %v %q %q %d, want %s %q %q %d", u.Addr, u.Peer, u.Jail, u.Time, tt.addr, tt.peer, tt.jail, tt.time)
			}
			if got := string(u.AppendLine(nil)); got != tt.line+"\n" {
				t.Errorf("AppendLine: got %q, want %q", got, tt.line+"\n")
			}
		})
	}
}

// FuzzParse: Parse never panics, never accepts more than the bound, and
// what it accepts is written back byte for byte: nothing in an accepted
// line escapes the grammar.
func FuzzParse(f *testing.F) {
	f.Add([]byte("2026-11-30T09:12:01+00:00 banpush: unban 203.0.113.7 peer=web1 jail=sshd time=1764493921"))
	f.Add([]byte("2026-11-30T09:12:01+00:00 banpush: unban 2001:db8::7 peer=a"))
	f.Add([]byte("2026-11-30T09:12:01+00:00 banpush: ban 203.0.113.7 peer=web1 jail=sshd time=1 bantime=600"))
	f.Add([]byte("2026-11-30T09:12:01+00:00 banpush: unban fe80::1%eth0 peer=a"))
	f.Add([]byte("2026-11-30T09:12:01+00:00 banpush: unban ::ffff:1.2.3.4 peer=a"))
	f.Fuzz(func(t *testing.T, line []byte) {
		u, err := Parse(line)
		if err != nil {
			if !errors.Is(err, ErrBadLine) && !errors.Is(err, ErrOtherKind) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(line) > logline.MaxLen {
			t.Fatalf("accepted %d bytes", len(line))
		}
		if !u.Addr.IsValid() || u.Addr.Zone() != "" || u.Addr.Is4In6() {
			t.Fatalf("accepted address %v", u.Addr)
		}
		if got := u.AppendLine(nil); !bytes.Equal(got, append(append([]byte(nil), line...), '\n')) {
			t.Fatalf("round trip: got %q from %q", got, line)
		}
		if u.Stamp.Equal(time.Time{}) {
			t.Fatal("zero stamp")
		}
	})
}
