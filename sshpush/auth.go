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
	certs   []string // the files of the certificates among signers, in order
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
// encrypted or holds only a public key), then certificates for keys only
// the agent holds, then - unless IdentitiesOnly - the agent's other keys.
// It never fails: what cannot be used is skipped, with a warning when
// OpenSSH would give one.
func loadIdentities(ctx context.Context, t Target, warn func(string)) *identities {
	l := &idLoader{peer: t.peer(), warn: warn, ids: &identities{}, seen: map[string]bool{}}
	l.dialAgent(ctx, t)
	l.readCerts(t.CertificateFiles)
	for _, path := range t.IdentityFiles {
		l.addIdentityFile(path)
	}
	l.addAgentCerts()
	if !t.IdentitiesOnly {
		for _, s := range l.agent {
			l.add(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey()))
		}
	}
	return l.ids
}

// idLoader collects the identities of one Target.
type idLoader struct {
	peer  string
	warn  func(string)
	ids   *identities
	agent []ssh.Signer // the agent's keys

	certs     []*ssh.Certificate // from CertificateFiles
	certPaths []string
	certUsed  []bool // offered with a key from IdentityFiles

	seen map[string]bool // public keys already offered
}

// dialAgent connects to the agent, if the Target names one, and lists its
// keys. An agent that cannot be reached is a warning.
func (l *idLoader) dialAgent(ctx context.Context, t Target) {
	path := t.agentPath()
	if path == "" {
		return
	}
	d := net.Dialer{Timeout: t.connectTimeout()}
	conn, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		l.ids.agent = conn
		l.agent, err = agent.NewClient(conn).Signers()
	}
	if err != nil {
		l.warn(fmt.Sprintf("peer %s: agent %s: %v: not used", l.peer, path, err))
		l.agent = nil
	}
}

// agentKey returns the agent's signer for pub, or nil.
func (l *idLoader) agentKey(pub ssh.PublicKey) ssh.Signer {
	for _, s := range l.agent {
		if sameKey(s.PublicKey(), pub) {
			return s
		}
	}
	return nil
}

func (l *idLoader) readCerts(paths []string) {
	for _, path := range paths {
		if c := readCert(path, l.peer, l.warn); c != nil {
			l.certs = append(l.certs, c)
			l.certPaths = append(l.certPaths, path)
		}
	}
	l.certUsed = make([]bool, len(l.certs))
}

// add offers s, once per public key.
func (l *idLoader) add(s ssh.Signer, note string) {
	k := string(s.PublicKey().Marshal())
	if !l.seen[k] {
		l.seen[k] = true
		l.ids.signers = append(l.ids.signers, s)
		l.ids.notes = append(l.ids.notes, note)
	}
}

// addIdentityFile offers one IdentityFiles entry: its PATH-cert.pub and the
// configured certificates for its key, then the key itself.
func (l *idLoader) addIdentityFile(path string) {
	id := readIdentity(path, l.peer, l.warn)
	signer, note := id.signer, path
	if signer == nil && id.pub != nil {
		if signer = l.agentKey(id.pub); signer != nil {
			note = path + " (agent)"
		}
	}
	if signer == nil {
		if id.encrypted {
			why := "no agent is available"
			if len(l.agent) > 0 {
				why = "the agent does not hold it"
			}
			l.warn(fmt.Sprintf("peer %s: key %s is encrypted and %s: skipped", l.peer, path, why))
			l.ids.skipped = append(l.ids.skipped, path+" (encrypted)")
		}
		return
	}
	if c := readCert(path+"-cert.pub", l.peer, l.warn); c != nil {
		l.addCert(c, signer, path+"-cert.pub", path+"-cert.pub")
	}
	for i, c := range l.certs {
		if sameKey(c.Key, signer.PublicKey()) {
			l.certUsed[i] = true
			l.addCert(c, signer, l.certPaths[i], l.certPaths[i])
		}
	}
	l.add(signer, note)
}

// addAgentCerts offers the configured certificates whose keys only the
// agent holds.
func (l *idLoader) addAgentCerts() {
	for i, c := range l.certs {
		if l.certUsed[i] {
			continue
		}
		if s := l.agentKey(c.Key); s != nil {
			l.addCert(c, s, l.certPaths[i], l.certPaths[i]+" (agent)")
			continue
		}
		l.warn(fmt.Sprintf("peer %s: certificate %s: no key for it: skipped", l.peer, l.certPaths[i]))
	}
}

// addCert offers the certificate c, from the file path, with the key of
// s; note names it in messages.
func (l *idLoader) addCert(c *ssh.Certificate, s ssh.Signer, path, note string) {
	cs, err := ssh.NewCertSigner(c, s)
	if err != nil {
		l.warn(fmt.Sprintf("peer %s: certificate %s: %v: skipped", l.peer, note, err))
		return
	}
	n := len(l.ids.signers)
	l.add(cs, note)
	if len(l.ids.signers) > n { // not offered already
		l.ids.certs = append(l.ids.certs, path)
	}
}

// OfferedCertificates lists the files of the user certificates that Dial
// offers a server for t, in the order it offers them: each IdentityFiles
// entry's PATH-cert.pub and the CertificateFiles whose key is at hand (in
// a file, or in the agent). It reads what Dial reads, and warns about what
// Dial would warn about; it contacts no server.
func OfferedCertificates(ctx context.Context, t Target, warn func(string)) []string {
	ids := loadIdentities(ctx, t, warn)
	defer ids.close()
	return ids.certs
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
