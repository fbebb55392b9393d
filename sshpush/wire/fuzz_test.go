package wire

import (
	"strings"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"banpush-v1 ping", "banpush-v1 ban", "banpush-v1 stream", "", "banpush-v1 ban ", "scp -t /"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		req, err := ParseRequest(s)
		switch {
		case err == nil && req >= Ping && req <= Stream && s == req.String():
		case err != nil && req == 0:
		default:
			t.Fatalf("ParseRequest(%q) = %v, %v", s, req, err)
		}
	})
}

// FuzzParseReply feeds the answer parser arbitrary receiver output: it must
// not panic, and what it accepts must be a single banpush-v1 ok line whose
// fields are printable words. An accepted ban answer accounts for exactly
// the records it was given.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"banpush-v1 ok peer=a version=1.2\n",
		"banpush-v1 ok accepted=10 refused=2\n",
		"banpush-v1 ok\n",
		"banpush-v1 ok a=1 a=2\n",
		"sh: 1: banpush-v1: not found\n",
		"banpush-v1 ok a=\xff\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		fields, ok := parseFields(out)
		if !ok {
			return
		}
		line := strings.TrimSuffix(string(out), "\n")
		if !strings.HasPrefix(line, OK) || strings.Contains(line, "\n") {
			t.Fatalf("accepted %q", out)
		}
		n := 0
		for k, v := range fields {
			if !isKey([]byte(k)) || !isValue([]byte(v)) || !strings.Contains(line, " "+k+"="+v) {
				t.Fatalf("accepted %q with field %q=%q", out, k, v)
			}
			n += len(k) + len(v) + 2
		}
		if n+len(OK) != len(line) {
			t.Fatalf("accepted %q but its fields do not cover it", out)
		}
		for records := 0; records < 4; records++ {
			if a, err := ParseAnswer(out, records); err == nil && a.Accepted+a.Refused != records {
				t.Fatalf("ParseAnswer(%q, %d) = %+v: does not account for the records", out, records, a)
			}
		}
	})
}

// FuzzAnswerRoundTrip: every answer a receiver can write parses back to
// itself, for the batch it answers; and a ping answer the same.
func FuzzAnswerRoundTrip(f *testing.F) {
	f.Add(uint16(3), uint16(0), uint16(0), uint16(0), "web1", "v1.2.3")
	f.Add(uint16(1), uint16(4), uint16(2), uint16(3), "a", "")
	f.Add(uint16(0), uint16(2000), uint16(2000), uint16(1), "peer-1.example", "devel")
	f.Add(uint16(0), uint16(0), uint16(0), uint16(0), "x", "1 2\n3")
	f.Fuzz(func(t *testing.T, acc, ref, lim, from uint16, peer, version string) {
		a := Answer{Accepted: int(acc), Refused: int(ref), Limited: int(lim), LimitedFrom: int(from)}
		records := a.Accepted + a.Refused
		// What a receiver writes: limited records are refused records, and
		// the first of them is a line of the batch.
		if a.Limited > a.Refused || (a.Limited > 0) != (a.LimitedFrom > 0) || a.LimitedFrom > records {
			return
		}
		line := append(a.AppendTo(nil), '\n')
		got, err := ParseAnswer(line, records)
		if err != nil || got != a {
			t.Fatalf("%+v wrote %q, which parses as %+v, %v", a, line, got, err)
		}
		p := PingAnswer{Peer: peer, Version: version}
		pl, err := p.Marshal()
		valid := len(peer) > 0 && len(peer) <= 64 && peer != "." && peer != ".." && strings.Trim(peer, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
		if !valid {
			if err == nil {
				t.Fatalf("%+v: wrote %q for an invalid peer name", p, pl)
			}
			return
		}
		gp, err := ParsePing(pl)
		if err != nil || gp.Peer != peer || gp.Version != CleanVersion(version) {
			t.Fatalf("%+v wrote %q, which parses as %+v, %v", p, pl, gp, err)
		}
	})
}
