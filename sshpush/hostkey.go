package sshpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// plainHostKeyAlgos is OpenSSH's preference among plain host keys. It is
// offered after the algorithms known_hosts holds for the host, so that a
// server whose known key type is gone still gets its key checked (and
// reported as changed) rather than failing on "no common algorithm".
var plainHostKeyAlgos = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256,
	ssh.KeyAlgoECDSA384,
	ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512,
	ssh.KeyAlgoRSASHA256,
}

// hostKeyDB is the known_hosts view for one Target.
type hostKeyDB struct {
	db    *knownhosts.HostKeyDB // nil when no file exists
	files []string              // the files that exist, for messages
	addr  string                // host:port looked up
}

// loadHostKeys reads the Target's known_hosts files that exist.
func loadHostKeys(t Target) (*hostKeyDB, error) {
	h := &hostKeyDB{addr: t.KnownHostsAddr()}
	var key strings.Builder
	for _, f := range t.KnownHostsFiles {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("known_hosts file %s is not a regular file", f)
		}
		h.files = append(h.files, f)
		fmt.Fprintf(&key, "%q %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	if len(h.files) == 0 {
		return h, nil
	}
	db, err := hostKeyCache.load(key.String(), h.files)
	if err != nil {
		return nil, err
	}
	h.db = db
	return h, nil
}

// hostKeyCache holds the known_hosts files a process read last, parsed,
// for as long as none of them changes (same paths, sizes and times). A
// sender dials every peer, and the peers' lines usually share one file:
// parsing it at each dial cost time in proportion to the number of peers
// for each of them, and each connection kept its own parsed copy (a
// HostKeyDB is read-only once made, so one can serve every connection).
var hostKeyCache hostKeyDBCache

type hostKeyDBCache struct {
	mu  sync.Mutex
	key string
	db  *knownhosts.HostKeyDB
}

// load returns the parsed files, from the cache when key, which describes
// them, is the key they were parsed under.
func (c *hostKeyDBCache) load(key string, files []string) (*knownhosts.HostKeyDB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil && c.key == key {
		return c.db, nil
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, err
	}
	c.key, c.db = key, db
	return db, nil
}

// algorithms returns the host key algorithms to offer: those known_hosts
// holds for the host first (golang/go#29286: x/crypto's own order would
// pick a type known_hosts lacks), then OpenSSH's plain-key order. With
// plainOnly, certificate algorithms are left out.
func (h *hostKeyDB) algorithms(plainOnly bool) []string {
	var algos []string
	if h.db != nil {
		for _, a := range h.db.HostKeyAlgorithms(h.addr) {
			if plainOnly && strings.Contains(a, "-cert-") {
				continue
			}
			algos = append(algos, a)
		}
	}
	for _, a := range plainHostKeyAlgos {
		if !slices.Contains(algos, a) {
			algos = append(algos, a)
		}
	}
	return algos
}

// hostKeyCheck is the HostKeyCallback of one connection. It records the
// key the server presented and why it was refused.
type hostKeyCheck struct {
	h *hostKeyDB

	mu  sync.Mutex
	key ssh.PublicKey
	err error
}

func (c *hostKeyCheck) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	var err error
	if c.h.db == nil {
		err = &xknownhosts.KeyError{}
	} else {
		err = c.h.db.HostKeyCallback()(hostname, remote, key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == nil {
		c.key = key
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	return err
}

// failure returns the host key failure of the connection as an *Error, or
// nil when the host key was accepted (or never seen).
func (c *hostKeyCheck) failure(peer string) *Error {
	c.mu.Lock()
	key, err := c.key, c.err
	c.mu.Unlock()
	if err == nil {
		return nil
	}
	e := &Error{Peer: peer, HostKey: key}
	offered := describeKey(key)
	var keyErr *xknownhosts.KeyError
	var revoked *xknownhosts.RevokedError
	switch {
	case errors.As(err, &revoked):
		e.Class, e.Revoked = ClassHostKeyChanged, true
		e.Err = fmt.Errorf("host key of %s is revoked in known_hosts (%s, @revoked at %s:%d)",
			c.h.display(), offered, revoked.Revoked.Filename, revoked.Revoked.Line)
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		e.Class = ClassHostKeyUnknown
		e.Err = fmt.Errorf("host key of %s is unknown: server offers %s, %s", c.h.display(), offered, c.h.searched())
	case errors.As(err, &keyErr):
		e.Class = ClassHostKeyChanged
		e.Err = fmt.Errorf("host key of %s does not match known_hosts: server offers %s, known_hosts has %s",
			c.h.display(), offered, describeKnown(keyErr.Want))
	case c.h.certProblem(e, key):
	default:
		// A host certificate that did not verify otherwise (a bad
		// signature, an unknown critical option).
		e.Class = ClassHostKeyUnknown
		if c.h.db != nil && len(c.h.db.HostKeys(c.h.addr)) > 0 {
			e.Class = ClassHostKeyChanged
		}
		e.Err = fmt.Errorf("host key of %s does not verify: server offers %s: %w", c.h.display(), offered, err)
	}
	return e
}

// certProblem explains why the host certificate key did not verify, in
// the order x/crypto checks: its CA, then its validity, then its
// principals. It fills e and reports whether it found the reason.
func (h *hostKeyDB) certProblem(e *Error, key ssh.PublicKey) bool {
	cert, ok := key.(*ssh.Certificate)
	if !ok || h.db == nil {
		return false
	}
	trusted := false
	for _, k := range h.db.HostKeys(h.addr) {
		if k.Cert && bytes.Equal(k.Marshal(), cert.SignatureKey.Marshal()) {
			trusted = true
		}
	}
	host, _, _ := net.SplitHostPort(h.addr)
	now := time.Now()
	var revoked *xknownhosts.RevokedError
	for _, k := range []struct {
		what string
		key  ssh.PublicKey
	}{{"key", cert.Key}, {"CA", cert.SignatureKey}} {
		// known_hosts checks @revoked before it looks at the host.
		if errors.As(h.db.HostKeyCallback()(h.addr, placeholderAddr, k.key), &revoked) {
			e.Class, e.Revoked = ClassHostKeyChanged, true
			e.Err = fmt.Errorf("host certificate of %s is revoked: its %s (%s) is @revoked at %s:%d",
				h.display(), k.what, describeKey(k.key), revoked.Revoked.Filename, revoked.Revoked.Line)
			return true
		}
	}
	switch {
	case !trusted:
		e.Class = ClassHostCertCA
		e.Err = fmt.Errorf("host certificate of %s is signed by CA %s, which no @cert-authority line for %s trusts (%s)",
			h.display(), ssh.FingerprintSHA256(cert.SignatureKey), host, h.searched())
	case cert.ValidAfter > 0 && now.Before(certTime(cert.ValidAfter)):
		e.Class = ClassHostCertTime
		e.Err = fmt.Errorf("host certificate of %s is not valid until %s", h.display(), certTime(cert.ValidAfter).UTC().Format(time.RFC3339))
	case cert.ValidBefore != ssh.CertTimeInfinity && !now.Before(certTime(cert.ValidBefore)):
		e.Class = ClassHostCertTime
		e.Err = fmt.Errorf("host certificate of %s expired at %s", h.display(), certTime(cert.ValidBefore).UTC().Format(time.RFC3339))
	case !slices.Contains(cert.ValidPrincipals, host):
		e.Class = ClassHostCertHost
		e.Err = fmt.Errorf("host certificate of %s names %s, not %s", h.display(), strings.Join(quoteAll(cert.ValidPrincipals), ", "), host)
	default:
		return false
	}
	return true
}

// placeholderAddr is the remote address given to known_hosts checks made
// for a host by name alone.
var placeholderAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}

// certTime converts a certificate's validity bound to a time.
func certTime(t uint64) time.Time {
	if t > math.MaxInt64 {
		t = math.MaxInt64
	}
	return time.Unix(int64(t), 0)
}

// quoteAll quotes at most 5 names, as printable ASCII.
func quoteAll(names []string) []string {
	var out []string
	for i, n := range names {
		if i == 5 {
			out = append(out, fmt.Sprintf("and %d more", len(names)-i))
			break
		}
		out = append(out, strconv.Quote(record.Printable(n)))
	}
	if len(out) == 0 {
		out = []string{"no host"}
	}
	return out
}

// display is the host as written in known_hosts.
func (h *hostKeyDB) display() string {
	return xknownhosts.Normalize(h.addr)
}

func (h *hostKeyDB) searched() string {
	if len(h.files) == 0 {
		return "and no known_hosts file exists"
	}
	return "not found in " + strings.Join(h.files, ", ")
}

// describeKey names a key the way ssh-keygen -l does: type and SHA256
// fingerprint. A certificate is described by its key and its signer.
func describeKey(key ssh.PublicKey) string {
	if key == nil {
		return "no key"
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		return fmt.Sprintf("%s certificate for %s signed by CA %s",
			cert.Key.Type(), ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(cert.SignatureKey))
	}
	return key.Type() + " " + ssh.FingerprintSHA256(key)
}

func describeKnown(want []xknownhosts.KnownKey) string {
	var parts []string
	for i, k := range want {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(want)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s at %s:%d", k.Key.Type(), k.Filename, k.Line))
	}
	return strings.Join(parts, ", ")
}

// errFetched stops FetchHostKey's handshake once the key is known.
var errFetched = errors.New("host key fetched")

// FetchHostKey connects to the Target and returns the host key its server
// presents, without checking it against known_hosts and without
// authenticating: the key exchange is aborted as soon as the key is known,
// so nothing is ever sent to the server. It prefers the key type known_hosts
// already holds for the host, then OpenSSH's order (ed25519 first); it never
// returns a host certificate. The key is for a person to compare and trust
// (see KnownHostsLine); FetchHostKey alone proves nothing about it.
func FetchHostKey(ctx context.Context, t Target, o Options) (ssh.PublicKey, error) {
	o = o.withDefaults()
	peer := t.peer()
	if err := t.check(); err != nil {
		return nil, &Error{Peer: peer, Class: ClassConfig, Err: err}
	}
	h, err := loadHostKeys(t)
	if err != nil {
		return nil, &Error{Peer: peer, Class: ClassConfig, Err: err}
	}
	var (
		mu  sync.Mutex
		got ssh.PublicKey
	)
	cfg := &ssh.ClientConfig{
		User: t.User,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			mu.Lock()
			defer mu.Unlock()
			got = key
			return errFetched
		},
		HostKeyAlgorithms: h.algorithms(true),
		ClientVersion:     clientVersion,
	}
	conn, err := handshake(ctx, t, o, cfg)
	if conn != nil {
		conn.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if got != nil {
		return got, nil
	}
	if err == nil {
		err = errors.New("no host key presented")
	}
	var e *Error
	if errors.As(err, &e) {
		return nil, e
	}
	return nil, &Error{Peer: peer, Class: ClassUnreachable, Err: err}
}

// KnownHostsLine returns the known_hosts line, without a newline, that
// makes key the host key of the Target: its HostKeyAlias, or its HostName
// written as [host]:port when the port is not 22. The host is not hashed.
func KnownHostsLine(t Target, key ssh.PublicKey) string {
	return knownhosts.Line([]string{t.KnownHostsAddr()}, key)
}
