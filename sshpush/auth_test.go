package sshpush

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// warnings collects Options.Warn messages.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) warn(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	good, goodSigner, _ := keyFile(t, dir, "good", "")
	other, _, otherPriv := keyFile(t, dir, "other", "")
	enc, _, encPriv := keyFile(t, dir, "encrypted", "secret")
	_, _, agentPriv := keyFile(t, dir, "agentonly", "")
	missing := filepath.Join(dir, "missing")

	// pubonly is a key known by its .pub only; the agent holds it.
	pubonly, _, pubonlyPriv := keyFile(t, dir, "pubonly", "")
	if err := os.Remove(pubonly); err != nil {
		t.Fatal(err)
	}

	// certified has a user certificate beside it, and certfile one
	// elsewhere; the server trusts only the CA for them.
	userCA := newEd25519(t)
	certified, certifiedSigner, _ := keyFile(t, dir, "certified", "")
	writeCert(t, certified+"-cert.pub", signCert(t, userCA, certifiedSigner.PublicKey(), ssh.UserCert, "banpush"))
	certfileKey, certfileSigner, certfilePriv := keyFile(t, dir, "certfile", "")
	certfile := filepath.Join(dir, "elsewhere-cert.pub")
	writeCert(t, certfile, signCert(t, userCA, certfileSigner.PublicKey(), ssh.UserCert, "banpush"))
	wrongPrincipal := filepath.Join(dir, "wrong-cert.pub")
	writeCert(t, wrongPrincipal, signCert(t, userCA, certfileSigner.PublicKey(), ssh.UserCert, "root"))

	rsaPath := filepath.Join(dir, "rsa")
	block, err := ssh.MarshalPrivateKey(rsaKeyFor(t), "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, rsaPath, string(pem.EncodeToMemory(block)))

	authorized := []ssh.PublicKey{goodSigner.PublicKey(), newRSA(t).PublicKey(), signerOf(t, encPriv).PublicKey(),
		signerOf(t, agentPriv).PublicKey(), signerOf(t, pubonlyPriv).PublicKey()}

	tests := []struct {
		name           string
		files          []string
		certs          []string
		agentKeys      []any
		agentPath      string // overrides the agent's socket
		identitiesOnly bool
		wantClass      Class
		wantWarn       []string
		wantMsg        []string
		wantAttempts   int64 // keys the server saw, 0 = do not check
	}{
		{name: "key file", files: []string{good}, wantAttempts: 1},
		{name: "missing file skipped silently", files: []string{missing, good}},
		{name: "rsa key", files: []string{rsaPath}},
		{
			name: "wrong key", files: []string{other},
			wantClass: ClassAuth, wantMsg: []string{"authentication failed", "user banpush", "offered " + other},
		},
		{
			name: "no key at all", files: []string{missing},
			wantClass: ClassAuth, wantMsg: []string{"no usable key"},
		},
		{
			name: "encrypted key without agent", files: []string{enc},
			wantClass: ClassAuth,
			wantWarn:  []string{"peer srv: key " + enc + " is encrypted and no agent is available: skipped"},
			wantMsg:   []string{"skipped " + enc + " (encrypted)"},
		},
		{
			name: "encrypted key, agent without it", files: []string{enc}, agentKeys: []any{otherPriv}, identitiesOnly: true,
			wantClass: ClassAuth,
			wantWarn:  []string{"peer srv: key " + enc + " is encrypted and the agent does not hold it: skipped"},
		},
		{name: "encrypted key held by the agent", files: []string{enc}, agentKeys: []any{encPriv}, identitiesOnly: true},
		{name: "public key file, agent holds the key", files: []string{pubonly}, agentKeys: []any{pubonlyPriv}, identitiesOnly: true},
		{name: "agent key", agentKeys: []any{agentPriv}},
		{
			name: "configured key offered before agent keys", files: []string{good},
			agentKeys: []any{otherPriv, agentPriv}, wantAttempts: 1,
		},
		{
			name: "IdentitiesOnly leaves other agent keys out", files: []string{other},
			agentKeys: []any{agentPriv}, identitiesOnly: true, wantClass: ClassAuth,
		},
		{
			name: "agent socket missing", files: []string{good}, agentPath: filepath.Join(dir, "no-agent.sock"),
			wantWarn: []string{"peer srv: agent " + filepath.Join(dir, "no-agent.sock") + ": "},
		},
		{name: "agent none", files: []string{good}, agentPath: "none"},
		{name: "certificate beside the key", files: []string{certified}, wantAttempts: 1},
		{name: "CertificateFile", files: []string{certfileKey}, certs: []string{certfile}},
		{name: "CertificateFile for an agent key", certs: []string{certfile}, agentKeys: []any{certfilePriv}, identitiesOnly: true},
		{
			name: "certificate for another user", files: []string{certfileKey}, certs: []string{wrongPrincipal},
			wantClass: ClassAuth,
		},
		{
			name: "certificate without its key", files: []string{good}, certs: []string{certfile},
			wantWarn: []string{"peer srv: certificate " + certfile + ": no key for it: skipped"},
		},
		{
			name: "unparsable key", files: []string{good + ".pub", good},
			wantWarn: []string{"peer srv: key " + good + ".pub: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, serverConfig{authorized: authorized, userCA: userCA.PublicKey()})
			target := s.target(t, []string{s.KnownHostsLine(s.HostKeys[0].PublicKey())}, tt.files...)
			target.CertificateFiles = tt.certs
			target.IdentitiesOnly = tt.identitiesOnly
			if tt.agentKeys != nil {
				target.IdentityAgent = startAgent(t, tt.agentKeys...)
			}
			if tt.agentPath != "" {
				target.IdentityAgent = tt.agentPath
			}
			var w warnings
			c, err := Dial(t.Context(), target, Options{Warn: w.warn})
			if tt.wantClass == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.Close()
			} else {
				wantClass(t, err, tt.wantClass, false, tt.wantMsg...)
			}
			got := w.get()
			if len(got) != len(tt.wantWarn) {
				t.Fatalf("got warnings %q, want %d like %q", got, len(tt.wantWarn), tt.wantWarn)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.wantWarn[i]) {
					t.Errorf("got warning %q, want it to start with %q", got[i], tt.wantWarn[i])
				}
			}
			if n := s.AuthAttempts.Load(); tt.wantAttempts != 0 && n != tt.wantAttempts {
				t.Errorf("server saw %d keys, want %d", n, tt.wantAttempts)
			}
		})
	}
}

func rsaKeyFor(t *testing.T) any {
	t.Helper()
	newRSA(t)
	return rsaKey
}

func signerOf(t *testing.T, k any) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeCert(t *testing.T, path string, c *ssh.Certificate) {
	t.Helper()
	writeFile(t, path, string(ssh.MarshalAuthorizedKey(c)))
}

// TestOfferedCertificates: the certificates Dial offers, as files, in its
// order: the one beside a key file, a CertificateFile whose key is at hand;
// not one whose key is missing, nor a key's own file.
func TestOfferedCertificates(t *testing.T) {
	dir := t.TempDir()
	userCA := newEd25519(t)
	plain, _, _ := keyFile(t, dir, "plain", "")
	certified, certifiedSigner, _ := keyFile(t, dir, "certified", "")
	writeCert(t, certified+"-cert.pub", signCert(t, userCA, certifiedSigner.PublicKey(), ssh.UserCert, "banpush"))
	other, otherSigner, _ := keyFile(t, dir, "other", "")
	elsewhere := filepath.Join(dir, "elsewhere-cert.pub")
	writeCert(t, elsewhere, signCert(t, userCA, otherSigner.PublicKey(), ssh.UserCert, "banpush"))
	orphan := filepath.Join(dir, "orphan-cert.pub")
	writeCert(t, orphan, signCert(t, userCA, newEd25519(t).PublicKey(), ssh.UserCert, "banpush"))

	tests := []struct {
		name         string
		files, certs []string
		want         []string
	}{
		{"no certificate", []string{plain}, nil, nil},
		{"beside the key", []string{plain, certified}, nil, []string{certified + "-cert.pub"}},
		{"CertificateFile", []string{other, certified}, []string{elsewhere, orphan}, []string{elsewhere, certified + "-cert.pub"}},
		{"missing key", []string{filepath.Join(dir, "missing")}, []string{elsewhere}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w warnings
			got := OfferedCertificates(t.Context(), Target{Name: "p", IdentityFiles: tt.files, CertificateFiles: tt.certs}, w.warn)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q (warnings %q)", got, tt.want, w.get())
			}
		})
	}
}
