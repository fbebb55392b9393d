package receive

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// MaxAuthInfo bounds what ReadAuthInfo reads: sshd's file holds one line
// per authentication method used, a few KiB at most.
const MaxAuthInfo = 64 << 10

// AuthInfoError says why the peer could not be named after its
// certificate. The receiver then refuses the session and writes nothing.
type AuthInfoError struct {
	Problem string // what was wrong, for the receiver's stderr
	Hint    string // what the receiving host's admin can do about it
}

func (e *AuthInfoError) Error() string { return "no peer name from a certificate: " + e.Problem }

func authInfoError(hint, format string, args ...any) error {
	return &AuthInfoError{Problem: fmt.Sprintf(format, args...), Hint: hint}
}

const exposeHint = "set 'ExposeAuthInfo yes' for the receiving account in sshd_config (contrib/sshd/banpush.conf), then reload sshd"

// ReadAuthInfo reads the file sshd names in SSH_USER_AUTH when
// ExposeAuthInfo is on: the keys and certificates the session was
// authenticated with. sshd creates it for the session, owned by the
// account and readable by it alone; ReadAuthInfo refuses anything else (a
// link, a file another account could have written, or one too large).
func ReadAuthInfo(path string) ([]byte, error) {
	if path == "" {
		return nil, authInfoError(exposeHint, "sshd exposed no authentication information (SSH_USER_AUTH is not set: is ExposeAuthInfo off for this account?)")
	}
	if !filepath.IsAbs(path) {
		return nil, authInfoError(exposeHint, "SSH_USER_AUTH is not an absolute path")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, authInfoError(exposeHint, "cannot open sshd's authentication information: %v", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, authInfoError(exposeHint, "cannot stat sshd's authentication information: %v", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, authInfoError(exposeHint, "sshd's authentication information is not a plain file")
	case int(st.Uid) != os.Geteuid():
		return nil, authInfoError(exposeHint, "sshd's authentication information belongs to uid %d, not to this account", st.Uid)
	case st.Mode&0o022 != 0:
		return nil, authInfoError(exposeHint, "sshd's authentication information is writable by others")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxAuthInfo+1))
	if err != nil {
		return nil, authInfoError(exposeHint, "cannot read sshd's authentication information: %v", err)
	}
	if len(data) > MaxAuthInfo {
		return nil, authInfoError("", "sshd's authentication information is larger than %d bytes", MaxAuthInfo)
	}
	return data, nil
}

const signHint = "sign the pushing host's key with the fleet's user CA, naming the host in the key ID: ssh-keygen -s USER_CA -I HOSTNAME -n banpush KEY.pub"

// PeerFromAuthInfo names the pushing peer after the user certificate it
// logged in with: data is sshd's ExposeAuthInfo file (ReadAuthInfo), which
// must hold exactly one "publickey" line, and that key must be a user
// certificate valid at now whose key ID is a valid peer name
// (record.ValidName). sshd has already verified the certificate against
// the cert-authority line that ran this receiver (its CA, principals,
// validity, RevokedKeys); the checks here only refuse what cannot be a
// name. Lines of other methods (keyboard-interactive, ...) are ignored.
// The key ID is returned as it is, for the log lines; what identifies the
// peer is PeerID of it, so that a host whose plain key is authorized too,
// under another spelling of its name, is still one peer.
func PeerFromAuthInfo(data []byte, now time.Time) (string, error) {
	if len(data) > MaxAuthInfo {
		return "", authInfoError("", "authentication information larger than %d bytes", MaxAuthInfo)
	}
	var keys [][]byte
	for line := range bytes.Lines(data) {
		method, rest, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
		if string(method) == "publickey" {
			keys = append(keys, rest)
		}
	}
	switch {
	case len(keys) == 0:
		return "", authInfoError("use a cert-authority line ('banpush authorize --cert-authority') only with keys, not passwords", "the session was not authenticated by a key")
	case len(keys) > 1:
		return "", authInfoError("allow one key per session for this account (AuthenticationMethods publickey in contrib/sshd/banpush.conf)", "the session was authenticated by %d keys; which one ran this command is unknown", len(keys))
	}
	fields := bytes.Fields(keys[0])
	if len(fields) != 2 {
		return "", authInfoError("", "the key line in sshd's authentication information is not TYPE BASE64")
	}
	typ, b64 := fields[0], fields[1]
	blob := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(blob, b64)
	if err != nil {
		return "", authInfoError("", "the key in sshd's authentication information does not decode")
	}
	key, err := ssh.ParsePublicKey(blob[:n])
	if err != nil || key.Type() != string(typ) {
		return "", authInfoError("", "the key in sshd's authentication information does not parse")
	}
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return "", authInfoError(signHint, "the peer logged in with a plain %s key, not a certificate", key.Type())
	}
	if cert.CertType != ssh.UserCert {
		return "", authInfoError(signHint, "the peer's certificate is not a user certificate")
	}
	if t := now.Unix(); t < 0 || uint64(t) < cert.ValidAfter || uint64(t) >= cert.ValidBefore {
		return "", authInfoError(signHint, "the peer's certificate %s is not valid now", strconv.Quote(printableID(cert.KeyId)))
	}
	if !record.ValidName(cert.KeyId) {
		return "", authInfoError(signHint, "the key ID %s of the peer's certificate is not a peer name (1 to 64 characters from A-Z a-z 0-9 . _ -)", strconv.Quote(printableID(cert.KeyId)))
	}
	return cert.KeyId, nil
}

// printableID bounds a key ID for a message and keeps it printable ASCII.
func printableID(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return record.Printable(s)
}
