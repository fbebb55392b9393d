package sshpush

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// These are for 'banpush peers trust': the one place where banpush adds a
// host key to known_hosts, after a person has compared its fingerprint.

// HostKeyStatus is what known_hosts says about a key for a host.
type HostKeyStatus struct {
	Known   bool                   // the key is trusted for the host
	Stale   []xknownhosts.KnownKey // keys known_hosts has for the host instead, by file and line
	Revoked *xknownhosts.KnownKey  // the key is marked @revoked
}

// LookupHostKey checks key against the Target's known_hosts files that
// exist, the way Dial does: one key per type is kept for a host, and a key
// of a type known_hosts does not hold for it counts as changed.
func LookupHostKey(t Target, key ssh.PublicKey) (HostKeyStatus, error) {
	var files []string
	for _, f := range t.KnownHostsFiles {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return HostKeyStatus{}, nil
	}
	cb, err := xknownhosts.New(files...)
	if err != nil {
		return HostKeyStatus{}, err
	}
	err = cb(t.KnownHostsAddr(), placeholderAddr, key)
	var keyErr *xknownhosts.KeyError
	var revoked *xknownhosts.RevokedError
	switch {
	case err == nil:
		return HostKeyStatus{Known: true}, nil
	case errors.As(err, &revoked):
		return HostKeyStatus{Revoked: &revoked.Revoked}, nil
	case errors.As(err, &keyErr):
		slices.SortFunc(keyErr.Want, func(a, b xknownhosts.KnownKey) int {
			if c := strings.Compare(a.Filename, b.Filename); c != 0 {
				return c
			}
			return a.Line - b.Line
		})
		return HostKeyStatus{Stale: keyErr.Want}, nil
	}
	return HostKeyStatus{}, err
}

// AppendKnownHost appends line to the known_hosts file at path with one
// write, creating the file (0600) and its directory (0700) when missing.
func AppendKnownHost(path, line string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	data := []byte(line + "\n")
	if fi.Size() > 0 {
		// Start on a line of our own if the file lacks a final newline.
		last := make([]byte, 1)
		if r, err := os.Open(path); err == nil {
			if _, err := r.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
				data = append([]byte{'\n'}, data...)
			}
			r.Close()
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fsutil.SyncDir(dir)
	}
	return nil
}
