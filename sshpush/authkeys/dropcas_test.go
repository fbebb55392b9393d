package authkeys

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const (
	keepCA  = "banpush-ca=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	oldCA   = "banpush-ca=SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	otherCA = "banpush-ca=SHA256:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
)

func TestDropOtherCAs(t *testing.T) {
	block := func(lines ...string) string {
		return BeginMarker + "\n" + strings.Join(lines, "\n") + "\n" + EndMarker + "\n"
	}
	for _, tt := range []struct {
		name, in, want string
		dropped        []string
		err            error
	}{
		{
			name:    "old CA dropped, the rest kept",
			in:      "# admin\ncert-authority ssh-ed25519 AAAA " + oldCA + "\n" + block("cert-authority,x ssh-ed25519 AAAA "+keepCA, "restrict ssh-ed25519 AAAA banpush-peer=web1", "cert-authority,x ssh-ed25519 AAAA "+oldCA, "cert-authority,x ssh-ed25519 AAAA "+otherCA) + "# after\n",
			want:    "# admin\ncert-authority ssh-ed25519 AAAA " + oldCA + "\n" + block("cert-authority,x ssh-ed25519 AAAA "+keepCA, "restrict ssh-ed25519 AAAA banpush-peer=web1") + "# after\n",
			dropped: []string{oldCA, otherCA},
		},
		{
			name: "nothing to drop",
			in:   block("cert-authority,x ssh-ed25519 AAAA " + keepCA),
			want: block("cert-authority,x ssh-ed25519 AAAA " + keepCA),
		},
		{
			name: "no block",
			in:   "cert-authority ssh-ed25519 AAAA " + oldCA + "\n",
			want: "cert-authority ssh-ed25519 AAAA " + oldCA + "\n",
		},
		{
			name: "no end marker",
			in:   BeginMarker + "\ncert-authority ssh-ed25519 AAAA " + oldCA + "\n",
			err:  ErrBlock,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped, err := DropOtherCAs([]byte(tt.in), keepCA)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if string(got) != tt.want || !slices.Equal(dropped, tt.dropped) {
				t.Errorf("got\n%s dropped %q\nwant\n%s dropped %q", got, dropped, tt.want, tt.dropped)
			}
			if others := OtherCAs(got, keepCA); len(others) != 0 {
				t.Errorf("OtherCAs after the drop: %q", others)
			}
			if others := OtherCAs([]byte(tt.in), keepCA); !slices.Equal(others, tt.dropped) {
				t.Errorf("OtherCAs before: %q, want %q", others, tt.dropped)
			}
		})
	}
	if _, _, err := DropOtherCAs(nil, "banpush-peer=web1"); err == nil {
		t.Error("a peer's mark as the CA to keep: no error")
	}
}

// TestEditFileRace: while root drops the old CA's line, the account puts
// a link to a file of its choosing in place of every temporary file root
// makes in ~/.ssh, and swaps authorized_keys itself with a link to root's
// secret and back: the file of its choosing is never made, and no file of
// the account's ever holds a copy of the secret.
func TestEditFileRace(t *testing.T) {
	secretPath, secret := secretFile(t)
	planted := filepath.Join(t.TempDir(), "planted")
	home, ak := newHome(t)
	dir := filepath.Dir(ak)
	content := BeginMarker + "\ncert-authority ssh-ed25519 AAAA " + keepCA + "\ncert-authority ssh-ed25519 AAAA " + oldCA + "\n" + EndMarker + "\n"
	tmpName := regexp.MustCompile(`^\.authorized_keys\.`)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the temporary files
		defer wg.Done()
		for !stop.Load() {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if tmpName.MatchString(e.Name()) {
					p := filepath.Join(dir, e.Name())
					if os.Remove(p) == nil {
						os.Symlink(planted, p)
					}
				}
			}
		}
	}()
	go func() { // the file itself
		defer wg.Done()
		link, plain := filepath.Join(dir, "link"), filepath.Join(dir, "plain")
		for !stop.Load() {
			os.Symlink(secretPath, link)
			os.Rename(link, ak)
			os.WriteFile(plain, []byte(content), 0o600)
			os.Rename(plain, ak)
		}
	}()
	for range 300 {
		EditFile(ak, func(old []byte) ([]byte, error) { // refusals are expected
			data, _, err := DropOtherCAs(old, keepCA)
			return data, err
		})
	}
	stop.Store(true)
	wg.Wait()
	if _, err := os.Lstat(planted); err == nil {
		t.Errorf("root made %s through the account's link", planted)
	}
	assertNoCopy(t, home, secret)
}
