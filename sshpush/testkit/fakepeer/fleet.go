package fakepeer

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Fleet is n peers that each run a Receiver and accept one client key, as
// a pushing host sees its peers: the key file to log in with and a
// known_hosts file that holds every peer's host key.
type Fleet struct {
	Peers      []*Peer
	KeyFile    string // the client's private key (OpenSSH format, unencrypted)
	KnownHosts string // a known_hosts file for every peer
}

// Peer is one peer of a Fleet, named peer1, peer2, ...
type Peer struct {
	Name string
	*Server
	*Receiver
}

// StartFleet starts n peers. They stop when the test ends.
func StartFleet(t testing.TB, n int) *Fleet {
	t.Helper()
	dir := t.TempDir()
	f := &Fleet{KnownHosts: filepath.Join(dir, "known_hosts")}
	var pub ssh.PublicKey
	f.KeyFile, pub = NewKeyFile(t, dir, "id_ed25519")
	var kh strings.Builder
	for i := range n {
		r := NewReceiver(t)
		p := &Peer{Name: fmt.Sprintf("peer%d", i+1), Receiver: r,
			Server: Start(t, Config{Authorized: []ssh.PublicKey{pub}, Handler: r.Handle})}
		kh.WriteString(p.KnownHosts())
		f.Peers = append(f.Peers, p)
	}
	if err := os.WriteFile(f.KnownHosts, []byte(kh.String()), 0o600); err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	return f
}

// NewKeyFile writes a new unencrypted ed25519 private key to dir/name
// (mode 0600) and returns its path and public key.
func NewKeyFile(t testing.TB, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("fakepeer: %v", err)
	}
	return path, signer.PublicKey()
}
