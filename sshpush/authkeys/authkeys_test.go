package authkeys

import (
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrFhEZxFGmBw0CRP/tAvOfqKPPLdAdOMEtLQD/QbvCl root@web1\n"

func TestShellQuote(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"/usr/bin/banpush", "/usr/bin/banpush", false},
		{"--max-burst", "--max-burst", false},
		{"", "''", false},
		{"a b", "'a b'", false},
		{"it's", `'it'\''s'`, false},
		{"$(id)", "'$(id)'", false},
		{"`id`", "'`id`'", false},
		{"a;b|c&d", "'a;b|c&d'", false},
		{"*", "'*'", false},
		{"~root", "'~root'", false},
		{`a"b`, "", true},
		{`a\b`, "", true},
		{"a\nb", "", true},
		{"a\x00b", "", true},
		{"é", "", true},
	}
	for _, tt := range tests {
		got, err := ShellQuote(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ShellQuote(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestShellQuoteRoundTrip: the real shell turns each quoted word back into
// the argument it came from.
func TestShellQuoteRoundTrip(t *testing.T) {
	args := []string{"plain", "with space", "it's", "$(id)", "`id`", "a;b", "*", "~", "'", "''", "x'y'z", "-n", "%h", "!"}
	var words []string
	for _, a := range args {
		q, err := ShellQuote(a)
		if err != nil {
			t.Fatal(err)
		}
		words = append(words, q)
	}
	script := `for a in ` + strings.Join(words, " ") + `; do printf '%s\0' "$a"; done`
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(args, "|") {
		t.Errorf("shell gave %q, want %q", got, args)
	}
}

// TestLineParses: x/crypto parses the line as one key with the options
// banpush meant, including the command exactly as written.
func TestLineParses(t *testing.T) {
	line, mark, err := Line(Spec{
		Binary: "/usr/local/bin/banpush", Peer: "web1",
		Args:    []string{"receive", "--peer", "web1", "--log", "/var/log/x y.log", "--ignore", "198.51.100.0/24"},
		From:    []string{"192.0.2.10", "2001:db8::/64"},
		KeyFile: []byte(pub),
	})
	if err != nil {
		t.Fatal(err)
	}
	key, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(rest) != 0 {
		t.Fatalf("ParseAuthorizedKey: %v, rest %q", err, rest)
	}
	if comment != "banpush-peer=web1" || mark != comment || key.Type() != "ssh-ed25519" {
		t.Errorf("comment %q mark %q type %q", comment, mark, key.Type())
	}
	want := []string{"restrict", "no-port-forwarding", "no-X11-forwarding", "no-agent-forwarding", "no-pty", "no-user-rc",
		`from="192.0.2.10,2001:db8::/64"`,
		`command="/usr/local/bin/banpush receive --peer web1 --log '/var/log/x y.log' --ignore 198.51.100.0/24"`}
	if strings.Join(opts, "\n") != strings.Join(want, "\n") {
		t.Errorf("options:\n%s\nwant:\n%s", strings.Join(opts, "\n"), strings.Join(want, "\n"))
	}
}

// TestCALine: a cert-authority line carries the principals, the same
// restrictions and command, and is marked by the CA's fingerprint.
func TestCALine(t *testing.T) {
	line, mark, err := Line(Spec{
		Binary: "/usr/bin/banpush", CertAuthority: true,
		Args:    []string{"receive", "--peer-from-cert", "--log", "/var/log/banpush/received.log"},
		From:    []string{"192.0.2.0/24"},
		KeyFile: []byte(pub),
	})
	if err != nil {
		t.Fatal(err)
	}
	key, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(rest) != 0 {
		t.Fatalf("ParseAuthorizedKey: %v, rest %q", err, rest)
	}
	if want := "banpush-ca=" + ssh.FingerprintSHA256(key); comment != want || mark != want {
		t.Errorf("comment %q, mark %q; want %q", comment, mark, want)
	}
	want := []string{"cert-authority", `principals="banpush"`, "restrict", "no-port-forwarding", "no-X11-forwarding", "no-agent-forwarding", "no-pty", "no-user-rc",
		`from="192.0.2.0/24"`,
		`command="/usr/bin/banpush receive --peer-from-cert --log /var/log/banpush/received.log"`}
	if strings.Join(opts, "\n") != strings.Join(want, "\n") {
		t.Errorf("options:\n%s\nwant:\n%s", strings.Join(opts, "\n"), strings.Join(want, "\n"))
	}
	line2, _, err := Line(Spec{Binary: "/usr/bin/banpush", CertAuthority: true, Principals: []string{"banpush", "fleet-a"}, KeyFile: []byte(pub)})
	if err != nil || !strings.HasPrefix(line2, `cert-authority,principals="banpush,fleet-a",restrict,`) {
		t.Errorf("two principals: %q, %v", line2, err)
	}
}

func TestLineRefuses(t *testing.T) {
	good := Spec{Binary: "/usr/bin/banpush", Peer: "web1", KeyFile: []byte(pub)}
	tests := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"unsafe peer", func(s *Spec) { s.Peer = "web1 --allow-private" }, "peer name"},
		{"relative binary", func(s *Spec) { s.Binary = "banpush" }, "absolute"},
		{"quote in argument", func(s *Spec) { s.Args = []string{"--log", `/x"y`} }, `contains "`},
		{"newline in argument", func(s *Spec) { s.Args = []string{"--log", "/x\ny"} }, "printable"},
		{"bad from", func(s *Spec) { s.From = []string{"*.example.com"} }, "from"},
		{"two keys", func(s *Spec) { s.KeyFile = []byte(pub + pub) }, "more than one key"},
		{"options in key file", func(s *Spec) { s.KeyFile = []byte(`command="/bin/sh" ` + pub) }, "options"},
		{"no key", func(s *Spec) { s.KeyFile = []byte("hello\n") }, "not an OpenSSH public key"},
		{"empty", func(s *Spec) { s.KeyFile = nil }, "not an OpenSSH public key"},
		{"CA line with a peer", func(s *Spec) { s.CertAuthority = true }, "names no peer"},
		{"unsafe principal", func(s *Spec) { s.CertAuthority, s.Peer, s.Principals = true, "", []string{`banpush",command="/bin/sh`} }, "principals"},
		{"empty principal", func(s *Spec) { s.CertAuthority, s.Peer, s.Principals = true, "", []string{""} }, "principals"},
	}
	for _, tt := range tests {
		s := good
		tt.mod(&s)
		_, _, err := Line(s)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

func TestInstall(t *testing.T) {
	l1 := "restrict ssh-ed25519 AAAA banpush-peer=web1"
	l1b := "restrict,from=\"192.0.2.1\" ssh-ed25519 AAAA banpush-peer=web1"
	l2 := "restrict ssh-ed25519 BBBB banpush-peer=web2"
	ca := "banpush-ca=SHA256:" + strings.Repeat("A", 42) + "/"
	c1 := `cert-authority,principals="banpush",restrict ssh-ed25519 CCCC ` + ca
	c1b := `cert-authority,principals="banpush",restrict,from="192.0.2.0/24" ssh-ed25519 CCCC ` + ca
	block := func(lines ...string) string {
		return BeginMarker + "\n" + strings.Join(lines, "\n") + "\n" + EndMarker + "\n"
	}
	tests := []struct {
		name, in, mark, line, want, wantErr string
	}{
		{"empty file", "", "banpush-peer=web1", l1, block(l1), ""},
		{"no final newline", "ssh-rsa X me", "banpush-peer=web1", l1, "ssh-rsa X me\n" + block(l1), ""},
		{"append to block", "a\n" + block(l1) + "b\n", "banpush-peer=web2", l2, "a\n" + block(l1, l2) + "b\n", ""},
		{"replace in place", block(l1, l2), "banpush-peer=web1", l1b, block(l1b, l2), ""},
		{"replace duplicates once", block(l1, l2, l1), "banpush-peer=web1", l1b, block(l1b, l2), ""},
		{"peer line outside block kept", l1 + "\n", "banpush-peer=web1", l1b, l1 + "\n" + block(l1b), ""},
		{"CRLF kept", "x\r\n", "banpush-peer=web1", l1, "x\r\n" + block(l1), ""},
		{"two blocks", block(l1) + block(l2), "banpush-peer=web1", l1, "", "two banpush blocks"},
		{"no end", BeginMarker + "\n" + l1 + "\n", "banpush-peer=web1", l1, "", "no end marker"},
		{"line of another peer", "", "banpush-peer=web2", l1, "", "does not carry that mark"},
		{"CA line beside peer lines", block(l1, l2), ca, c1, block(l1, l2, c1), ""},
		{"CA line replaced", block(c1, l2), ca, c1b, block(c1b, l2), ""},
		{"not a mark", "", "banpush-ca=SHA256:x", "x banpush-ca=SHA256:x", "", "does not carry that mark"},
	}
	for _, tt := range tests {
		got, err := Install([]byte(tt.in), tt.mark, tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestFromPrefixes(t *testing.T) {
	content := "# the fleet\n" +
		`restrict,from="192.0.2.10,2001:db8::/64",command="/usr/bin/banpush receive --peer web1" ` + pub +
		"\n" + `from="!192.0.2.66,*.example.com,web3.example.com,198.51.100.0/24" ` + pub +
		"\nnot a key line\n" + pub + "\n" +
		`cert-authority,from="203.0.113.0/28" ` + pub + "\n"
	var got []string
	for _, p := range FromPrefixes([]byte(content)) {
		got = append(got, p.String())
	}
	want := "192.0.2.10/32 2001:db8::/64 198.51.100.0/24 203.0.113.0/28"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := FromPrefixes([]byte(strings.Repeat("x", MaxFileSize+10))); len(got) != 0 {
		t.Errorf("garbage: %v", got)
	}
}
