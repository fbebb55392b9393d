package sshdtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// writeHostKey makes a host key of type typ, writes its private half to
// path (mode 0600, as sshd requires) and its public half to path.pub.
func writeHostKey(typ, path string) (ssh.PublicKey, error) {
	var key crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("sshdtest: unknown host key type %q (want ed25519, ecdsa or rsa)", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	_, signer, err := writeKey(key, path, "")
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}

// writeKey writes key in OpenSSH format to path (0600) and its public key
// to path.pub, and returns the public key's path and a signer for it.
func writeKey(key crypto.Signer, path, passphrase string) (string, ssh.Signer, error) {
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(key, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	}
	if err != nil {
		return "", nil, fmt.Errorf("sshdtest: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", nil, fmt.Errorf("sshdtest: %w", err)
	}
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return "", nil, fmt.Errorf("sshdtest: %w", err)
	}
	pubPath := path + ".pub"
	if err := os.WriteFile(pubPath, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return "", nil, fmt.Errorf("sshdtest: %w", err)
	}
	return pubPath, signer, nil
}

// NewKey makes an ed25519 key pair: dir/name (OpenSSH format, mode 0600,
// encrypted when passphrase is not empty) and dir/name.pub
// (authorized_keys format). The signer works whatever the passphrase.
func NewKey(t testing.TB, dir, name, passphrase string) (privPath, pubPath string, signer ssh.Signer) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	privPath = filepath.Join(dir, name)
	pubPath, signer, err = writeKey(key, privPath, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return privPath, pubPath, signer
}

// Cert is what SignCert puts in a certificate.
type Cert struct {
	// Host makes a host certificate (ssh-keygen -h); otherwise it is a
	// user certificate.
	Host bool
	// ID is the key ID (-I), logged by sshd and, for banpush, the name of
	// the pushing peer. It may be anything, empty included.
	ID string
	// Principals are the user names (or, for a host certificate, the host
	// names) the certificate is valid for (-n); none makes it valid for
	// every one.
	Principals []string
	// Validity is ssh-keygen's -V interval, such as "-5m:+1h" (the
	// default when empty) or "20200101:20200102" for one long past.
	Validity string
}

// SignCert signs the public key at pubPath with the (unencrypted) CA
// private key at caPriv, using ssh-keygen, and returns the certificate's
// path, which is where ssh and sshd look for it: pubPath with ".pub"
// replaced by "-cert.pub". An existing certificate there is replaced.
func SignCert(caPriv, pubPath string, c Cert) (string, error) {
	if !strings.HasSuffix(pubPath, ".pub") {
		return "", fmt.Errorf("sshdtest: public key path %q does not end in .pub", pubPath)
	}
	validity := c.Validity
	if validity == "" {
		validity = "-5m:+1h"
	}
	args := []string{"-q", "-s", caPriv, "-I", c.ID, "-V", validity}
	if c.Host {
		args = append(args, "-h")
	}
	if len(c.Principals) > 0 {
		args = append(args, "-n", strings.Join(c.Principals, ","))
	}
	out, err := exec.Command("ssh-keygen", append(args, pubPath)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sshdtest: ssh-keygen -s: %v: %s", err, bytes.TrimSpace(out))
	}
	return strings.TrimSuffix(pubPath, ".pub") + "-cert.pub", nil
}

// SignUserCert signs the public key at pubPath with the (unencrypted) CA
// private key at caPriv (see SignCert), for one principal and a validity
// from five minutes ago to one hour from now, and returns the
// certificate's path. Trust the CA with Config.Extra
// "TrustedUserCAKeys " + caPriv + ".pub".
func SignUserCert(t testing.TB, caPriv, pubPath, principal string) string {
	t.Helper()
	cert, err := SignCert(caPriv, pubPath, Cert{ID: "sshdtest", Principals: []string{principal}})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
