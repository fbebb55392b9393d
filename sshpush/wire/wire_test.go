package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in      string
		want    Request
		wantErr error
	}{
		{"banpush-v1 ping", Ping, nil},
		{"banpush-v1 ban", Ban, nil},
		{"banpush-v1 stream", Stream, nil},
		{"", 0, ErrNoRequest},
		{"banpush-v1 ban ", 0, ErrUnknownRequest},
		{"BANPUSH-V1 BAN", 0, ErrUnknownRequest},
		{"banpush-v1", 0, ErrUnknownRequest},
		{"/bin/sh", 0, ErrUnknownRequest},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.in)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseRequest(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestRequestWords: every request's word parses back to it, and the
// unknown-request message names them all.
func TestRequestWords(t *testing.T) {
	for _, r := range Requests() {
		got, err := ParseRequest(r.String())
		if got != r || err != nil {
			t.Errorf("ParseRequest(%q) = %v, %v; want %v", r, got, err, r)
		}
		if !strings.Contains(ErrUnknownRequest.Error(), `"`+r.String()+`"`) {
			t.Errorf("%q does not name %q", ErrUnknownRequest, r)
		}
	}
	if got := Request(0).String(); got != "unknown request" {
		t.Errorf("Request(0) = %q", got)
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name, in string
		records  int
		want     Answer
		wantErr  bool
	}{
		{"plain", "banpush-v1 ok accepted=1 refused=1\n", 2, Answer{Accepted: 1, Refused: 1}, false},
		{"no newline", "banpush-v1 ok accepted=2 refused=0", 2, Answer{Accepted: 2}, false},
		{"limited", "banpush-v1 ok accepted=1 refused=1 limited=1 limited_from=2\n", 2, Answer{1, 1, 1, 2}, false},
		{"unknown field kept", "banpush-v1 ok accepted=1 refused=0 later=x\n", 1, Answer{Accepted: 1}, false},
		{"too few", "banpush-v1 ok accepted=0 refused=0\n", 2, Answer{}, true},
		{"too many", "banpush-v1 ok accepted=2 refused=1\n", 2, Answer{}, true},
		{"limited past the batch", "banpush-v1 ok accepted=1 refused=1 limited=1 limited_from=3\n", 2, Answer{}, true},
		{"more limited than refused", "banpush-v1 ok accepted=0 refused=2 limited=3 limited_from=1\n", 2, Answer{}, true},
		{"limited from zero", "banpush-v1 ok accepted=1 refused=1 limited=1 limited_from=0\n", 2, Answer{}, true},
		{"limited without from", "banpush-v1 ok accepted=1 refused=1 limited=1\n", 2, Answer{}, true},
		{"missing count", "banpush-v1 ok accepted=1\n", 1, Answer{}, true},
		{"leading zero", "banpush-v1 ok accepted=01 refused=0\n", 1, Answer{}, true},
		{"sign", "banpush-v1 ok accepted=+1 refused=0\n", 1, Answer{}, true},
		{"two lines", "banpush-v1 ok accepted=1 refused=0\nbanpush-v1 ok accepted=1 refused=0\n", 1, Answer{}, true},
		{"duplicate field", "banpush-v1 ok accepted=1 accepted=1 refused=0\n", 1, Answer{}, true},
		{"other version", "banpush-v2 ok accepted=1 refused=0\n", 1, Answer{}, true},
		{"empty", "", 0, Answer{}, true},
		{"double space", "banpush-v1 ok  accepted=1 refused=0\n", 1, Answer{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnswer([]byte(tt.in), tt.records)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestAnswerString(t *testing.T) {
	tests := []struct {
		a    Answer
		want string
	}{
		{Answer{Accepted: 3}, "banpush-v1 ok accepted=3 refused=0"},
		{Answer{Accepted: 1, Refused: 2, Limited: 1, LimitedFrom: 3}, "banpush-v1 ok accepted=1 refused=2 limited=1 limited_from=3"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestParsePing(t *testing.T) {
	tests := []struct {
		in      string
		want    PingAnswer
		wantErr bool
	}{
		{"banpush-v1 ok peer=web1 version=1.2.3\n", PingAnswer{"web1", "1.2.3"}, false},
		{"banpush-v1 ok peer=web1\n", PingAnswer{}, true},
		{"banpush-v1 ok peer=we/b version=1\n", PingAnswer{}, true},
		{"banpush-v1 ok peer=web1 version=" + strings.Repeat("1", 65) + "\n", PingAnswer{}, true},
		{"hello\n", PingAnswer{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePing([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePing(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCleanVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"v1.2.3", "v1.2.3"},
		{"v0.0.0-20261130-abcdef+dirty", "v0.0.0-20261130-abcdef+dirty"},
		{"1 2;rm", "1_2_rm"},
		{"", "unknown"},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{"é", "__"},
	}
	for _, tt := range tests {
		if got := CleanVersion(tt.in); got != tt.want {
			t.Errorf("CleanVersion(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVerdictOf(t *testing.T) {
	tests := []struct {
		status int
		want   Verdict
	}{
		{0, Answered}, {64, TooOld}, {65, Refused}, {73, CannotWrite}, {75, RetryLater}, {78, Refused},
		{127, NotBanpush}, {1, Failed}, {70, Failed}, {255, Failed},
	}
	for _, tt := range tests {
		if got := VerdictOf(tt.status); got != tt.want {
			t.Errorf("VerdictOf(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestRefusalLines(t *testing.T) {
	b := AppendRefusal(nil, 3, record.ErrLoopback)
	b = AppendNotShown(b, 7)
	want := "banpush: line 3: refused: loopback address\nbanpush: 7 more refused lines not shown\n"
	if string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	if !IsBanpush(nil, b) {
		t.Error("refusal lines are not recognized as banpush's")
	}
}

func TestIsBanpush(t *testing.T) {
	tests := []struct {
		stdout, stderr string
		want           bool
	}{
		{"banpush-v1 ok\n", "", true},
		{"", "banpush: error: unknown request\n", true},
		{"", "sh: 1: banpush: not found\n", false},
		{"", "rm: cannot remove '/root/tmp.x': No such file or directory\nbanpush: error: log unavailable\n", true},
		{"", "motd\nsh: 1: banpush: not found\n", false},
		{"hello\n", "", false},
		{"banpush-v1", "", false},
	}
	for _, tt := range tests {
		if got := IsBanpush([]byte(tt.stdout), []byte(tt.stderr)); got != tt.want {
			t.Errorf("IsBanpush(%q, %q) = %v, want %v", tt.stdout, tt.stderr, got, tt.want)
		}
	}
}

func TestParseBatch(t *testing.T) {
	lines, err := ParseBatch([]byte("203.0.113.1\nbad\n203.0.113.2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].Err != nil || lines[1].Err == nil || !errors.Is(lines[2].Err, record.ErrIncomplete) {
		t.Errorf("got %+v", lines)
	}
	if _, err := ParseBatch([]byte(strings.Repeat("\n", MaxRecords+1))); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too many lines: %v", err)
	}
	if _, err := ReadBatch(strings.NewReader(strings.Repeat("x", MaxBatchBytes+1))); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too many bytes: %v", err)
	}
}

// TestFrames: what AppendFrame writes, ReadFrame reads back, batch by
// batch; a batch cut short is io.EOF.
func TestFrames(t *testing.T) {
	var batches [][]byte
	for _, addrs := range [][]string{{"203.0.113.1", "2001:db8::1"}, {}, {"203.0.113.2"}} {
		var b []byte
		for _, a := range addrs {
			r, err := record.Parse([]byte(a))
			if err != nil {
				t.Fatal(err)
			}
			b = AppendRecord(b, r)
		}
		if CountRecords(b) != len(addrs) {
			t.Fatalf("CountRecords(%q) = %d, want %d", b, CountRecords(b), len(addrs))
		}
		batches = append(batches, b)
	}
	var stream []byte
	for _, b := range batches {
		stream = AppendFrame(stream, b)
	}
	stream = append(stream, "203.0.113.3\n"...) // cut short: no empty line
	br := bufio.NewReader(strings.NewReader(string(stream)))
	for i, want := range batches {
		got, err := ReadFrame(br)
		if err != nil || string(got) != string(want) {
			t.Fatalf("frame %d: got %q, %v; want %q", i, got, err, want)
		}
	}
	if _, err := ReadFrame(br); !errors.Is(err, io.EOF) {
		t.Errorf("cut frame: %v, want io.EOF", err)
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"ping", "banpush-v1 ok peer=a version=1.2\n", map[string]string{"peer": "a", "version": "1.2"}},
		{"no newline", "banpush-v1 ok accepted=1 refused=0", map[string]string{"accepted": "1", "refused": "0"}},
		{"no fields", "banpush-v1 ok\n", map[string]string{}},
		{"empty", "", nil},
		{"just newline", "\n", nil},
		{"okay", "banpush-v1 okay\n", nil},
		{"double space", "banpush-v1 ok  a=1\n", nil},
		{"trailing space", "banpush-v1 ok a=1 \n", nil},
		{"empty value", "banpush-v1 ok a=\n", nil},
		{"no equals", "banpush-v1 ok a\n", nil},
		{"upper key", "banpush-v1 ok A=1\n", nil},
		{"duplicate", "banpush-v1 ok a=1 a=2\n", nil},
		{"control byte", "banpush-v1 ok a=1\x00\n", nil},
		{"cr", "banpush-v1 ok a=1\r\n", nil},
		{"second line", "banpush-v1 ok a=1\nb\n", nil},
		{"non-ascii", "banpush-v1 ok a=\xc3\xa9\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseFields([]byte(tt.in))
			if ok != (tt.want != nil) || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parseFields(%q): got %v, %v, want %v", tt.in, got, ok, tt.want)
			}
		})
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"10000", 10000, true}, {"", 0, false}, {"-1", 0, false}, {"+1", 0, false},
		{"01", 0, false}, {"1e3", 0, false}, {"9999999999", 0, false}, {"١", 0, false},
	}
	for _, tt := range tests {
		got, ok := count(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("count(%q): got %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMessage(t *testing.T) {
	if got := Message([]byte("Welcome\nbanpush: error: busy\nbanpush: line 2\n")); string(got) != "banpush: error: busy" {
		t.Errorf("got %q", got)
	}
	if got := Message([]byte("Welcome\n")); got != nil {
		t.Errorf("got %q, want nil", got)
	}
}
