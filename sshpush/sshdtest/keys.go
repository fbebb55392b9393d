package sshdtest

import (
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

// SignUserCert signs the public key at pubPath with the (unencrypted) CA
// private key at caPriv, using ssh-keygen, for one principal and a validity
// from five minutes ago to one hour from now. It returns the certificate's
// path, which is where ssh looks for it: pubPath with ".pub" replaced by
// "-cert.pub". Trust the CA with Config.Extra
// "TrustedUserCAKeys " + caPriv + ".pub".
func SignUserCert(t testing.TB, caPriv, pubPath, principal string) string {
	t.Helper()
	if !strings.HasSuffix(pubPath, ".pub") {
		t.Fatalf("sshdtest: public key path %q does not end in .pub", pubPath)
	}
	out, err := exec.Command("ssh-keygen", "-q", "-s", caPriv, "-I", "sshdtest",
		"-n", principal, "-V", "-5m:+1h", pubPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sshdtest: ssh-keygen -s: %v\n%s", err, out)
	}
	return strings.TrimSuffix(pubPath, ".pub") + "-cert.pub"
}
