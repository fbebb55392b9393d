package inventory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Inventory {
	t.Helper()
	inv, err := Parse("peers", strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return inv
}

func TestParsePeers(t *testing.T) {
	src := "# banpush peers\n" +
		"User ban\n" +
		"\n" +
		"Host web1 # the web server\n" +
		"\tHostName 192.0.2.1\n" +
		"HOST = db.eu-1\n" +
		"  hostname=\"db.example\"\n" +
		"Host *\n" +
		"  Port 2222\n" +
		"Host X_9\r\n" +
		"  ProxyJump none\n"
	inv := mustParse(t, src)
	got := inv.Peers()
	want := []Peer{{"web1", 4}, {"db.eu-1", 6}, {"X_9", 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Peers() = %v, want %v", got, want)
	}
	if p, ok := inv.Peer("db.eu-1"); !ok || p.Line != 6 {
		t.Errorf("Peer(db.eu-1) = %v, %v; want line 6, true", p, ok)
	}
	for _, name := range []string{"WEB1", "*", "", "nope"} {
		if _, ok := inv.Peer(name); ok {
			t.Errorf("Peer(%q) found, want not found", name)
		}
	}
	if !bytes.Equal(inv.Bytes(), []byte(src)) {
		t.Errorf("Bytes() changed the file:\n%q\nwant\n%q", inv.Bytes(), src)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int    // 0: not a SyntaxError
		msg  string // substring of the error
	}{
		{"duplicate", "Host a\nHost b\n  HostName x\nHost a\n", 4, "duplicate peer \"a\" (first at line 1)"},
		{"duplicate case", "Host web\nHost WEB\n", 2, "duplicate peer"},
		{"unsafe slash", "Host *\n  User x\nHost ../etc\n", 3, "unsafe peer name"},
		{"unsafe dotdot", "Host ..\n", 1, "unsafe peer name"},
		{"unsafe long", "Host " + strings.Repeat("a", 65) + "\n", 1, "unsafe peer name"},
		{"unsafe utf8", "Host wéb\n", 1, "unsafe peer name"},
		{"match exec", "Host a\n  HostName x\n\nMatch exec \"touch /tmp/x\"\n  User root\n", 4, "Match is not supported"},
		{"match all", "Match all\n", 1, "Match is not supported"},
		{"include", "Include /etc/passwd\n", 1, "Include is not supported"},
		{"unknown keyword", "Host a\n  Prot 22\n", 2, "unknown keyword \"Prot\""},
		{"unknown odd keyword", "Host a\n  P$rt 22\n", 2, "unknown keyword"},
		{"equals only", "Host a\n  =22\n", 2, "unknown keyword"},
		{"two names", "Host a b\n", 1, "names one peer"},
		{"negation", "Host !a\n", 1, "patterns are not supported"},
		{"wildcard", "Host *.example.com\n", 1, "patterns are not supported"},
		{"wildcard and star", "Host * a\n", 1, "names one peer"},
		{"no name", "Host\n", 1, "names one peer"},
		{"no name comment", "Host # x\n", 1, "names one peer"},
		{"missing value", "Host a\n  Port\n", 2, "Port needs a value"},
		{"hash in value", "Host a\n  HostName a#b\n", 2, "inside a value"},
		{"quoted hash", "Host a\n  IdentityFile \"/a #b\"\n", 2, "inside a value"},
		{"quoted host", "Host \"a\"\n", 1, "plainly"},
		{"unterminated", "Host a\n  IdentityFile \"/a b\n", 2, "unterminated quote"},
		{"control", "Host a\n  Port 22\x00\n", 2, "control character"},
		{"bare cr", "Host a\rHost b\n", 1, "control character"},
		{"cr at end", "Host a\r", 1, "control character"},
		{"bad utf8", "# ok\nHost a\n  # \xff\n", 3, "not valid UTF-8"},
		{"long line", "# " + strings.Repeat("x", MaxLineLen) + "\n", 1, "longer than"},
		{"too large", strings.Repeat("#\n", MaxSize/2+1), 0, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("peers", strings.NewReader(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error at line %d", tt.line)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "inventory: peers: ") {
				t.Errorf("error %q does not name the file", err)
			}
			var se *SyntaxError
			if tt.line == 0 {
				return
			}
			if !errors.As(err, &se) {
				t.Fatalf("error %q is not a *SyntaxError", err)
			}
			if se.Line != tt.line {
				t.Errorf("line %d, want %d", se.Line, tt.line)
			}
		})
	}
}

// TestErrorsDoNotEcho checks that file content reaches errors only as
// checked names and plain keywords.
func TestErrorsDoNotEcho(t *testing.T) {
	for _, src := range []string{
		"Host a\n  Pört x\n", "Host $(reboot)\n", "Host a\n  HostName a#$(reboot)\n",
		"Host a b$(reboot)\n", "Match exec $(reboot)\n",
	} {
		_, err := Parse("peers", strings.NewReader(src))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", src)
		}
		if strings.Contains(err.Error(), "reboot") || strings.Contains(err.Error(), "Pört") {
			t.Errorf("Parse(%q) error %q repeats the input", src, err)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers")
	_, err := Load(path)
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("Load of a missing file: got %v, want ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

// handWritten is an inventory as an administrator writes it: comments,
// blank lines, tabs and spaces, "=", a trailing comment, CRLF-free.
const handWritten = `# /etc/banpush/peers - who gets our bans.
# Managed by hand, and by banpush peers add/remove.

Host web1	# Paris
	HostName 192.0.2.10
	Port=2222

# The database, behind its own firewall.
Host db
	HostName   db.internal.example   # spaced out
	#Port 2200   (old port)

Host old
	HostName 192.0.2.99
	# decommissioned in spring

# ---- defaults, last so that peers override them ----

Host *
	User banpush
	IdentityFile /etc/banpush/id_ed25519
	UserKnownHostsFile /etc/banpush/known_hosts
	ConnectTimeout 4
`

// TestEditPreservesHandWrittenLines is the acceptance check: three adds
// and one remove leave every other hand-written line byte for byte, in
// order, and the result is exactly what is documented.
func TestEditPreservesHandWrittenLines(t *testing.T) {
	inv := mustParse(t, handWritten)
	for _, p := range []PeerSpec{
		{Name: "mail", HostName: "mail.example.org"},
		{Name: "backup-1", HostName: "2001:db8::7", Port: 2022, User: "root", IdentityFile: "~/.ssh/backup"},
		{Name: "edge.eu", HostName: "198.51.100.4", User: "ban"},
	} {
		if err := inv.Add(p); err != nil {
			t.Fatalf("Add(%s): %v", p.Name, err)
		}
	}
	if err := inv.Remove("old"); err != nil {
		t.Fatalf("Remove(old): %v", err)
	}
	got := string(inv.Bytes())
	want := `# /etc/banpush/peers - who gets our bans.
# Managed by hand, and by banpush peers add/remove.

Host web1	# Paris
	HostName 192.0.2.10
	Port=2222

# The database, behind its own firewall.
Host db
	HostName   db.internal.example   # spaced out
	#Port 2200   (old port)

Host mail
	HostName mail.example.org

Host backup-1
	HostName 2001:db8::7
	Port 2022
	User root
	IdentityFile ~/.ssh/backup

Host edge.eu
	HostName 198.51.100.4
	User ban

# ---- defaults, last so that peers override them ----

Host *
	User banpush
	IdentityFile /etc/banpush/id_ed25519
	UserKnownHostsFile /etc/banpush/known_hosts
	ConnectTimeout 4
`
	if got != want {
		t.Errorf("after edits got:\n%s\nwant:\n%s", got, want)
	}
	removed := map[string]bool{"Host old": true, "\tHostName 192.0.2.99": true, "\t# decommissioned in spring": true}
	rest := strings.Split(got, "\n")
	for _, l := range strings.Split(handWritten, "\n") {
		if removed[l] {
			continue
		}
		i := indexOf(rest, l)
		if i < 0 {
			t.Fatalf("hand-written line %q lost or out of order", l)
		}
		rest = rest[i+1:]
	}
	names := []string{}
	for _, p := range inv.Peers() {
		names = append(names, p.Name)
	}
	if w := []string{"web1", "db", "mail", "backup-1", "edge.eu"}; !reflect.DeepEqual(names, w) {
		t.Errorf("peers %v, want %v", names, w)
	}
}

func indexOf(lines []string, l string) int {
	for i, x := range lines {
		if x == l {
			return i
		}
	}
	return -1
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty file", "", "Host n\n    HostName h\n"},
		{"comment only", "# peers\n", "# peers\n\nHost n\n    HostName h\n"},
		{"no final newline", "Host a\n  HostName x", "Host a\n  HostName x\n\nHost n\n  HostName h\n"},
		{"defaults first", "Host *\n  User u\n\nHost a\n  HostName x\n", "Host *\n  User u\n\nHost a\n  HostName x\n\nHost n\n  HostName h\n"},
		{"defaults only", "# hi\n\n# defaults\nHost *\n\tUser u\n", "# hi\n\nHost n\n\tHostName h\n\n# defaults\nHost *\n\tUser u\n"},
		{"defaults at top of file", "Host *\n  User u\n", "Host n\n  HostName h\n\nHost *\n  User u\n"},
		{"before attached comment", "Host a\n  HostName x\n# defaults\nHost *\n  User u\n", "Host a\n  HostName x\n\nHost n\n  HostName h\n\n# defaults\nHost *\n  User u\n"},
		{"crlf", "Host a\r\n  HostName x\r\n", "Host a\r\n  HostName x\r\n\r\nHost n\r\n  HostName h\r\n"},
		{"settings before any Host", "User u\n", "User u\n\nHost n\n    HostName h\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, tt.src)
			if err := inv.Add(PeerSpec{Name: "n", HostName: "h"}); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if got := string(inv.Bytes()); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestAddRefuses(t *testing.T) {
	src := "Host web1\n  HostName x\n"
	tests := []struct {
		name string
		p    PeerSpec
		want error
	}{
		{"duplicate", PeerSpec{Name: "web1", HostName: "h"}, ErrDuplicate},
		{"duplicate case", PeerSpec{Name: "WEB1", HostName: "h"}, ErrDuplicate},
		{"unsafe name", PeerSpec{Name: "a b", HostName: "h"}, ErrInvalid},
		{"star", PeerSpec{Name: "*", HostName: "h"}, ErrInvalid},
		{"empty host", PeerSpec{Name: "n"}, ErrInvalid},
		{"host with space", PeerSpec{Name: "n", HostName: "a b"}, ErrInvalid},
		{"host with token", PeerSpec{Name: "n", HostName: "%h.x"}, ErrInvalid},
		{"host with zone", PeerSpec{Name: "n", HostName: "fe80::1%eth0"}, ErrInvalid},
		{"host option", PeerSpec{Name: "n", HostName: "-oProxyCommand=x"}, ErrInvalid},
		{"host newline", PeerSpec{Name: "n", HostName: "a\nProxyCommand x"}, ErrInvalid},
		{"port high", PeerSpec{Name: "n", HostName: "h", Port: 65536}, ErrInvalid},
		{"port negative", PeerSpec{Name: "n", HostName: "h", Port: -1}, ErrInvalid},
		{"user dash", PeerSpec{Name: "n", HostName: "h", User: "-x"}, ErrInvalid},
		{"user at", PeerSpec{Name: "n", HostName: "h", User: "a@b"}, ErrInvalid},
		{"identity relative", PeerSpec{Name: "n", HostName: "h", IdentityFile: "id"}, ErrInvalid},
		{"identity space", PeerSpec{Name: "n", HostName: "h", IdentityFile: "/a b"}, ErrInvalid},
		{"identity token", PeerSpec{Name: "n", HostName: "h", IdentityFile: "/k_%h"}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, src)
			err := inv.Add(tt.p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Add: got %v, want %v", err, tt.want)
			}
			if got := string(inv.Bytes()); got != src {
				t.Errorf("a refused Add changed the file to %q", got)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name, peer, src, want string
	}{
		{"only peer", "a", "Host a\n  HostName x\n", ""},
		{"first of two", "a", "Host a\n  HostName x\n\nHost b\n  HostName y\n", "Host b\n  HostName y\n"},
		{"last of two", "b", "Host a\n  HostName x\n\nHost b\n  HostName y\n", "Host a\n  HostName x\n"},
		{"attached comment goes", "b", "Host a\n  HostName x\n\n# b is new\nHost b\n  HostName y\n\nHost *\n  User u\n", "Host a\n  HostName x\n\nHost *\n  User u\n"},
		{"header stays", "b", "# header\nHost b\n  HostName y\n", "# header\n"},
		{"comment touching block above stays", "b", "Host a\n  HostName x\n# about b?\nHost b\n  HostName y\n", "Host a\n  HostName x\n# about b?\n"},
		{"trailing comment goes", "b", "Host b\n  HostName y\n  # old: Port 23\n\nHost c\n", "Host c\n"},
		{"comment of next block stays", "b", "Host b\n  HostName y\n# defaults\nHost *\n  User u\n", "# defaults\nHost *\n  User u\n"},
		{"section comment stays", "a", "Host a\n\n# ---- EU ----\n\nHost b\n  HostName y\n", "# ---- EU ----\n\nHost b\n  HostName y\n"},
		{"inner blank and comment go", "b", "Host x\n\nHost b\n  HostName y\n\n  # note\n  Port 2\nHost c\n", "Host x\n\nHost c\n"},
		{"no final newline", "b", "Host a\n  HostName x\n\nHost b\n  HostName y", "Host a\n  HostName x\n"},
		{"crlf", "b", "Host a\r\n  HostName x\r\n\r\nHost b\r\n  HostName y\r\n\r\nHost c\r\n", "Host a\r\n  HostName x\r\n\r\nHost c\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, tt.src)
			if err := inv.Remove(tt.peer); err != nil {
				t.Fatalf("Remove(%s): %v", tt.peer, err)
			}
			if got := string(inv.Bytes()); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestRemoveMissing(t *testing.T) {
	inv := mustParse(t, "Host a\n")
	for _, name := range []string{"b", "A", "*", "", "../x"} {
		if err := inv.Remove(name); !errors.Is(err, ErrNoPeer) {
			t.Errorf("Remove(%q): got %v, want ErrNoPeer", name, err)
		}
	}
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	t.Run("new file", func(t *testing.T) {
		path := filepath.Join(dir, "etc", "banpush", "peers")
		inv := New(path)
		if err := inv.Add(PeerSpec{Name: "a", HostName: "h"}); err != nil {
			t.Fatal(err)
		}
		if err := inv.Save(); err != nil {
			t.Fatalf("Save: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("new file mode %v, want 0600", fi.Mode().Perm())
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o755 {
			t.Errorf("new directory mode %v, want 0755", di.Mode().Perm())
		}
	})
	t.Run("keeps mode", func(t *testing.T) {
		path := filepath.Join(dir, "peers-644")
		if err := os.WriteFile(path, []byte("Host a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		inv, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.Remove("a"); err != nil {
			t.Fatal(err)
		}
		if err := inv.Save(); err != nil {
			t.Fatalf("Save: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644", fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(path); len(b) != 0 {
			t.Errorf("content %q, want empty", b)
		}
	})
	t.Run("changed meanwhile", func(t *testing.T) {
		path := filepath.Join(dir, "peers-race")
		if err := os.WriteFile(path, []byte("Host a\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		inv, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("Host a\nHost b\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := inv.Add(PeerSpec{Name: "c", HostName: "h"}); err != nil {
			t.Fatal(err)
		}
		if err := inv.Save(); !errors.Is(err, ErrChanged) {
			t.Fatalf("Save: got %v, want ErrChanged", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "Host a\nHost b\n" {
			t.Errorf("file overwritten: %q", b)
		}
		if err := New(path).Save(); !errors.Is(err, ErrChanged) {
			t.Errorf("Save of New over an existing file: got %v, want ErrChanged", err)
		}
	})
}
