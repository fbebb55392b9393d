package sshpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxKeyFile bounds what is read of a key or certificate file.
const maxKeyFile = 64 << 10

// identities are the signers offered to one server, in order, with a note
// on each for messages.
type identities struct {
	signers []ssh.Signer
	notes   []string
	skipped []string
	agent   net.Conn
}

func (ids *identities) close() {
	if ids.agent != nil {
		ids.agent.Close()
	}
}

// describe says what was offered, for an authentication failure.
func (ids *identities) describe() string {
	var s string
	if len(ids.notes) == 0 {
		s = "no usable key"
	} else {
		s = "offered " + strings.Join(ids.notes, ", ")
	}
	if len(ids.skipped) > 0 {
		s += "; skipped " + strings.Join(ids.skipped, ", ")
	}
	return s
}

// fileIdentity is one IdentityFiles entry once read.
type fileIdentity struct {
	path      string
	signer    ssh.Signer    // nil when the private key is missing, encrypted or unreadable
	pub       ssh.PublicKey // known even without signer when PATH.pub or the key file says it
	encrypted bool
}

// loadIdentities reads the Target's keys, certificates and agent, in the
// order they are offered: for each IdentityFiles entry its certificates
// then the key itself (from the file, or from the agent when the file is
// encrypted or holds only a public key), then - unless IdentitiesOnly -
// the agent's other keys. It never fails: what cannot be used is skipped,
// with a warning when OpenSSH would give one.
func loadIdentities(ctx context.Context, t Target, warn func(string)) *identities {
	peer := t.peer()
	ids := &identities{}
	var agentSigners []ssh.Signer
	if path := t.agentPath(); path != "" {
		d := net.Dialer{Timeout: t.connectTimeout()}
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			agentSigners, err = agent.NewClient(conn).Signers()
			ids.agent = conn
		}
		if err != nil {
			warn(fmt.Sprintf("peer %s: agent %s: %v: not used", peer, path, err))
			agentSigners = nil
		}
	}
	findAgent := func(pub ssh.PublicKey) ssh.Signer {
		for _, s := range agentSigners {
			if sameKey(s.PublicKey(), pub) {
				return s
			}
		}
		return nil
	}

	var certs []*ssh.Certificate
	for _, path := range t.CertificateFiles {
		if c := readCert(path, peer, warn); c != nil {
			certs = append(certs, c)
		}
	}

	seen := map[string]bool{}
	add := func(s ssh.Signer, note string) {
		k := string(s.PublicKey().Marshal())
		if !seen[k] {
			seen[k] = true
			ids.signers = append(ids.signers, s)
			ids.notes = append(ids.notes, note)
		}
	}
	used := make([]bool, len(certs))
	for _, path := range t.IdentityFiles {
		id := readIdentity(path, peer, warn)
		signer, note := id.signer, path
		if signer == nil && id.pub != nil {
			if signer = findAgent(id.pub); signer != nil {
				note = path + " (agent)"
			}
		}
		if signer == nil {
			if id.encrypted {
				why := "no agent is available"
				if len(agentSigners) > 0 {
					why = "the agent does not hold it"
				}
				warn(fmt.Sprintf("peer %s: key %s is encrypted and %s: skipped", peer, path, why))
				ids.skipped = append(ids.skipped, path+" (encrypted)")
			}
			continue
		}
		if c := readCert(path+"-cert.pub", peer, warn); c != nil {
			addCert(c, signer, path+"-cert.pub", peer, warn, add)
		}
		for i, c := range certs {
			if sameKey(c.Key, signer.PublicKey()) {
				used[i] = true
				addCert(c, signer, t.CertificateFiles[i], peer, warn, add)
			}
		}
		add(signer, note)
	}
	// Certificates for keys only the agent holds.
	for i, c := range certs {
		if used[i] {
			continue
		}
		if s := findAgent(c.Key); s != nil {
			addCert(c, s, t.CertificateFiles[i]+" (agent)", peer, warn, add)
			continue
		}
		warn(fmt.Sprintf("peer %s: certificate %s: no key for it: skipped", peer, t.CertificateFiles[i]))
	}
	if !t.IdentitiesOnly {
		for _, s := range agentSigners {
			add(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey()))
		}
	}
	return ids
}

func addCert(c *ssh.Certificate, s ssh.Signer, path, peer string, warn func(string), add func(ssh.Signer, string)) {
	cs, err := ssh.NewCertSigner(c, s)
	if err != nil {
		warn(fmt.Sprintf("peer %s: certificate %s: %v: skipped", peer, path, err))
		return
	}
	add(cs, path)
}

// readIdentity reads one IdentityFiles entry. A missing file is not an
// error (OpenSSH skips it too); PATH.pub then still names the key for the
// agent.
func readIdentity(path, peer string, warn func(string)) fileIdentity {
	id := fileIdentity{path: path}
	data, err := readSmall(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		warn(fmt.Sprintf("peer %s: key %s: %v: skipped", peer, path, err))
	default:
		id.signer, err = ssh.ParsePrivateKey(data)
		var pme *ssh.PassphraseMissingError
		switch {
		case err == nil:
			id.pub = id.signer.PublicKey()
			return id
		case errors.As(err, &pme):
			id.encrypted, id.pub = true, pme.PublicKey
		default:
			warn(fmt.Sprintf("peer %s: key %s: %v: skipped", peer, path, err))
		}
	}
	if id.pub == nil {
		if data, err := readSmall(path + ".pub"); err == nil {
			if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
				id.pub = pub
			}
		}
	}
	return id
}

// readCert reads an OpenSSH user certificate; nil if the file is missing
// (silently) or is not a user certificate (with a warning).
func readCert(path, peer string, warn func(string)) *ssh.Certificate {
	data, err := readSmall(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		warn(fmt.Sprintf("peer %s: certificate %s: %v: skipped", peer, path, err))
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		warn(fmt.Sprintf("peer %s: certificate %s: %v: skipped", peer, path, err))
		return nil
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok || c.CertType != ssh.UserCert {
		warn(fmt.Sprintf("peer %s: certificate %s: not a user certificate: skipped", peer, path))
		return nil
	}
	return c
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxKeyFile+1)); err != nil {
		return nil, err
	}
	if b.Len() > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFile)
	}
	return b.Bytes(), nil
}

func sameKey(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
}
