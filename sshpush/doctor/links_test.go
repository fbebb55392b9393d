package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestAuthorizedKeysLinks (issue 25, finding 8): doctor runs as root and
// reads the account's authorized_keys. The account replaces the file with
// a link to a file of root's (/etc/shadow), or with a second name of it
// (a hard link, where the kernel allows one): doctor must refuse to read
// it, with one failed check, and say nothing line by line of root's file.
func TestAuthorizedKeysLinks(t *testing.T) {
	testenv.Need(t, testenv.Root("plays root reading a file of another account's"))
	const nobody = 65534
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:$y$j9T$secret:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		make func(ak string) error
	}{
		{"symbolic link", func(ak string) error { return os.Symlink(secret, ak) }},
		{"hard link", func(ak string) error { return os.Link(secret, ak) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			ssh := filepath.Join(home, ".ssh")
			if err := os.Mkdir(ssh, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{home, ssh} {
				if err := os.Chown(d, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			}
			ak := filepath.Join(ssh, "authorized_keys")
			if err := tt.make(ak); err != nil {
				t.Skipf("cannot make the %s here: %v", tt.name, err)
			}
			rs, recv := CheckAuthorizedKeys(Keys{Path: ak, Account: Account{Name: "banpush", UID: nobody, GID: nobody, Home: home},
				Parse: func([]string) (Receiver, error) { return Receiver{}, nil }})
			if len(rs) != 1 || rs[0].Status != Fail || rs[0].Subject != "" || len(recv) != 0 {
				t.Fatalf("got %d results %+v; want one failed check of the file as a whole", len(rs), rs)
			}
			for _, r := range rs {
				if strings.Contains(r.Found, "line ") || strings.Contains(r.Found, "secret") {
					t.Errorf("a result tells of root's file: %+v", r)
				}
			}
			if rs[0].Hint == "" {
				t.Errorf("no hint: %+v", rs[0])
			}
		})
	}
}
