package f2b

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/record"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
		err  bool
	}{
		{name: "two jails", out: "Status\n|- Number of jail:\t2\n`- Jail list:\tbanpush, sshd\n", want: []string{"banpush", "sshd"}},
		{name: "none", out: "Status\n|- Number of jail:\t0\n`- Jail list:\t\n", want: []string{}},
		{name: "no list", out: "Server replied: pong\n", err: true},
		{name: "hostile name", out: "`- Jail list:\tsshd, $(reboot)\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.out))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseActions(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
		err  bool
	}{
		{name: "two", out: "The jail sshd has the following actions:\ndummy, banpush\n", want: []string{"dummy", "banpush"}},
		{name: "one, no newline", out: "The jail sshd has the following actions:\niptables-multiport", want: []string{"iptables-multiport"}},
		{name: "header only", out: "The jail sshd has the following actions:\n", want: []string{}},
		{name: "garbage", out: "Sorry but the jail 'x' does not exist\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseActions([]byte(tt.out))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLogPaths(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
		err  bool
	}{
		{name: "one", out: "Current monitored log file(s):\n`- /var/log/banpush/received.log\n", want: []string{"/var/log/banpush/received.log"}},
		{name: "two", out: "Current monitored log file(s):\n|- /a.log\n`- /b.log\n", want: []string{"/a.log", "/b.log"}},
		{name: "none", out: "No file is currently monitored\n", want: []string{}},
		{name: "relative", out: "Current monitored log file(s):\n`- a.log\n", err: true},
		{name: "garbage", out: "pong\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLogPaths([]byte(tt.out))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseLogTarget: the answers are fail2ban 1.0.2's to 'fail2ban-client
// get logtarget' (a file target, and one set with 'set logtarget SYSLOG').
func TestParseLogTarget(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    string
		notFile bool
		err     bool
	}{
		{name: "file", out: "Current logging target is:\n`- /var/log/fail2ban.log\n", want: "/var/log/fail2ban.log"},
		{name: "no newline", out: "Current logging target is:\n`- /tmp/x y/fail2ban.log", want: "/tmp/x y/fail2ban.log"},
		{name: "syslog", out: "Current logging target is:\n`- SYSLOG\n", notFile: true},
		{name: "lower case stdout", out: "Current logging target is:\n`- stdout\n", notFile: true},
		{name: "journal", out: "Current logging target is:\n`- SYSTEMD-JOURNAL\n", notFile: true},
		{name: "stderr", out: "Current logging target is:\n`- STDERR\n", notFile: true},
		{name: "relative", out: "Current logging target is:\n`- fail2ban.log\n", err: true},
		{name: "empty", out: "Current logging target is:\n`- \n", err: true},
		{name: "control character", out: "Current logging target is:\n`- /var/log/f\x1b[2Jail\n", err: true},
		{name: "non-ASCII", out: "Current logging target is:\n`- /var/log/f\xc3\xa9.log\n", err: true},
		{name: "extra line", out: "Current logging target is:\n`- /a.log\n`- /b.log\n", err: true},
		{name: "no header", out: "`- /var/log/fail2ban.log\n", err: true},
		{name: "garbage", out: "Server replied: pong\n", err: true},
		{name: "too long", out: "Current logging target is:\n`- /" + strings.Repeat("a", maxPath) + "\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLogTarget([]byte(tt.out))
			if errors.Is(err, ErrLogNotFile) != tt.notFile || (err != nil) != (tt.err || tt.notFile) {
				t.Fatalf("error %v, want error %v (not a file: %v)", err, tt.err || tt.notFile, tt.notFile)
			}
			if tt.notFile && !strings.Contains(err.Error(), "set logtarget") {
				t.Errorf("error %q: want a hint", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// dump is what fail2ban 1.0.2's 'fail2ban-client -d' printed for an sshd
// jail with the dummy and banpush actions (shortened).
const dump = `['set', 'loglevel', 'INFO']
['set', 'dbmaxmatches', 10]
['add', 'sshd', 'polling']
['set', 'sshd', 'maxlines', 1]
['set', 'sshd', 'addjournalmatch', '_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd']
['set', 'sshd', 'addlogpath', '/var/log/auth.log', 'head']
['set', 'sshd', 'addaction', 'dummy']
['multi-set', 'sshd', 'action', 'dummy', [['actionban', 'printf %b "+<ip>\\n" >> /tmp/dummy'], ['name', 'sshd']]]
['set', 'sshd', 'addaction', 'banpush']
['multi-set', 'sshd', 'action', 'banpush', [['actionban', '/usr/local/bin/banpush push  --jail "<name>" --time "<time>" --bantime "<bantime>" -- "<ip>"'], ['norestored', '1']]]
['start', 'sshd']
['add', 'banpush', 'polling']
['set', 'banpush', 'addlogpath', '/var/log/banpush/received.log', 'head']
['set', 'banpush', 'addaction', 'iptables-allports']
['start', 'banpush']
`

func TestParseDump(t *testing.T) {
	got, err := ParseDump([]byte("2026-11-30 07:14:10,370 fail2ban.configreader [1]: WARNING ...\n" + dump))
	if err != nil {
		t.Fatal(err)
	}
	want := []Jail{
		{Name: "sshd", LogPaths: []string{"/var/log/auth.log"}, Actions: []Action{
			{Name: "dummy", Ban: `printf %b "+<ip>\n" >> /tmp/dummy`},
			{Name: "banpush", Ban: `/usr/local/bin/banpush push  --jail "<name>" --time "<time>" --bantime "<bantime>" -- "<ip>"`},
		}},
		{Name: "banpush", LogPaths: []string{"/var/log/banpush/received.log"}, Actions: []Action{{Name: "iptables-allports"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got[0].Actions[0].Pushes() || !got[0].Actions[1].Pushes() {
		t.Errorf("Pushes: got %v %v, want false true", got[0].Actions[0].Pushes(), got[0].Actions[1].Pushes())
	}
	if _, err := ParseDump([]byte("['set', 'sshd'\n")); err == nil {
		t.Error("an unterminated list parsed")
	}
}

func TestParseLiteral(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
		err  bool
	}{
		{name: "list", in: `['a', "b", 1, -2, 1.5, True, False, None]`, want: []any{"a", "b", int64(1), int64(-2), 1.5, true, false, nil}},
		{name: "nested", in: `[['k', 'v'], ()]`, want: []any{[]any{"k", "v"}, []any{}}},
		{name: "escapes", in: `'a\'b\\c\nd\x41\u00e9'`, want: "a'b\\c\ndA\u00e9"},
		{name: "trailing comma", in: `['a',]`, want: []any{"a"}},
		{name: "unterminated string", in: `'abc`, err: true},
		{name: "unterminated list", in: `['a'`, err: true},
		{name: "junk after", in: `['a'] x`, err: true},
		{name: "bare word", in: `[abc]`, err: true},
		{name: "too deep", in: "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", err: true},
		{name: "short escape", in: `'\x4'`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLiteral(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestValidJail(t *testing.T) {
	for name, want := range map[string]bool{"sshd": true, "banpush-quorum": true, "nginx-http-auth": true, "": false, "a b": false, "$(x)": false, "-x": true} {
		if got := ValidJail(name); got != want {
			t.Errorf("ValidJail(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzParseDump: the dump parser never panics, and what it returns is
// made of jails with names.
func FuzzParseDump(f *testing.F) {
	f.Add([]byte(dump))
	f.Add([]byte(`['multi-set', 'j', 'action', 'a', [['actionban', '\u12']]]`))
	f.Add([]byte("[(1, 2.5e3, 'x'), None]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range must(ParseSettings(data)) {
			if !ValidJail(s.Jail) {
				t.Fatalf("a setting of an invalid jail: %+v", s)
			}
		}
		jails, err := ParseDump(data)
		if err != nil {
			return
		}
		for _, j := range jails {
			if j.Name == "" {
				t.Fatalf("a jail without a name: %+v", j)
			}
		}
	})
}

// FuzzParseAnswers: the parsers of the server's answers never panic and
// return only valid names and absolute paths.
func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte("Status\n|- Number of jail:\t2\n`- Jail list:\tbanpush, sshd\n"))
	f.Add([]byte("The jail sshd has the following actions:\ndummy, banpush\n"))
	f.Add([]byte("Current monitored log file(s):\n|- /a.log\n`- /b.log\n"))
	f.Add([]byte("Current logging target is:\n`- /var/log/fail2ban.log\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) ([]string, error){ParseStatus, ParseActions} {
			names, err := parse(data)
			for _, n := range names {
				if err == nil && !ValidJail(n) {
					t.Fatalf("invalid name %q returned", n)
				}
			}
		}
		paths, err := ParseLogPaths(data)
		for _, p := range paths {
			if err == nil && (p == "" || p[0] != '/') {
				t.Fatalf("relative path %q returned", p)
			}
		}
		if p, err := ParseLogTarget(data); err == nil && (p == "" || p[0] != '/' || record.Printable(p) != p || len(p) > maxPath) {
			t.Fatalf("log target %q returned", p)
		}
	})
}

func TestParseSettings(t *testing.T) {
	out := "WARNING 'allowipv6' not defined\n" +
		"['set', 'loglevel', 'INFO']\n" +
		"['add', 'banpush', 'polling']\n" +
		"['set', 'banpush', 'maxretry', 1]\n" +
		"['set', 'banpush', 'addignoreip', '127.0.0.1/8', '192.0.2.1']\n" +
		"['multi-set', 'banpush', 'action', 'x', [['actionban', 'y']]]\n" +
		"['set', 'bad jail', 'bantime', '1h']\n" +
		"['start', 'banpush']\n"
	got, err := ParseSettings([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{Jail: "banpush", Key: "add", Values: []string{"polling"}},
		{Jail: "banpush", Key: "maxretry", Values: []string{"1"}},
		{Jail: "banpush", Key: "addignoreip", Values: []string{"127.0.0.1/8", "192.0.2.1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := ParseSettings([]byte("['set', 'banpush', 'bantime'\n")); err == nil {
		t.Error("a list that does not parse: no error")
	}
}

// must is v, or nothing if err is set.
func must[T any](v []T, err error) []T {
	if err != nil {
		return nil
	}
	return v
}
