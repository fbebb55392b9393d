// Package authkeys writes the authorized_keys line that pins a pushing
// peer's key - or, as a cert-authority line, every key a user CA signed -
// to the banpush receiver, and installs it into an authorized_keys file.
//
// It trusts its caller for the receive arguments but checks them anyway:
// the line it writes is run by sshd through the account's shell, so every
// argument is validated and shell-quoted, and anything that could not be
// quoted unambiguously inside authorized_keys' double quotes is refused.
package authkeys

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/crypto/ssh"
)

// Restrictions are the options written before the command: restrict, plus
// the explicit options it implies, for sshd older than 7.2.
const Restrictions = "restrict,no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc"

// BeginMarker and EndMarker enclose the lines Install manages.
const (
	BeginMarker = "# BEGIN banpush: lines managed by 'banpush authorize --install'"
	EndMarker   = "# END banpush"
)

// The comment of a line says what it stands for, and Install replaces the
// line with the same comment: banpush-peer=NAME for one pushing peer's key,
// banpush-ca=FINGERPRINT for every key a certificate authority signed.
const (
	commentPrefix   = "banpush-peer="
	caCommentPrefix = "banpush-ca="
)

// DefaultPrincipal is the principal a pushing host's certificate must
// carry when Spec.Principals is empty.
const DefaultPrincipal = "banpush"

// Spec is what one authorized_keys line says.
type Spec struct {
	Binary  string   // absolute path of banpush on this host
	Args    []string // the forced command's arguments ("receive", ...), validated by the caller
	Peer    string   // the pushing peer's name, for the comment that marks the line; empty with CertAuthority
	From    []string // from= patterns: CIDR prefixes or addresses, canonical
	KeyFile []byte   // content of the peer's public key file, or of the CA's

	// CertAuthority makes the line a cert-authority line: KeyFile is a
	// user CA's public key, and the line lets in every key that CA signed
	// for one of Principals (DefaultPrincipal if empty).
	CertAuthority bool
	Principals    []string
}

// Line returns the authorized_keys line for s, without a newline, and the
// mark that Install and InstallFile know it by.
func Line(s Spec) (line, mark string, err error) {
	if !strings.HasPrefix(s.Binary, "/") {
		return "", "", errors.New("authkeys: the banpush binary path must be absolute")
	}
	key, err := ParsePublicKey(s.KeyFile)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	if s.CertAuthority {
		if s.Peer != "" {
			return "", "", errors.New("authkeys: a cert-authority line names no peer: the certificate does")
		}
		principals := s.Principals
		if len(principals) == 0 {
			principals = []string{DefaultPrincipal}
		}
		for _, p := range principals {
			if !record.ValidName(p) {
				return "", "", errors.New("authkeys: principals must be 1 to 64 characters from [A-Za-z0-9._-]")
			}
		}
		mark = caCommentPrefix + ssh.FingerprintSHA256(key)
		b.WriteString(`cert-authority,principals="` + strings.Join(principals, ",") + `",`)
	} else {
		if !record.ValidName(s.Peer) {
			return "", "", errors.New("authkeys: peer name must be 1 to 64 characters from [A-Za-z0-9._-]")
		}
		mark = commentPrefix + s.Peer
	}
	argv := append([]string{s.Binary}, s.Args...)
	cmd := make([]string, len(argv))
	for i, a := range argv {
		q, err := ShellQuote(a)
		if err != nil {
			return "", "", fmt.Errorf("authkeys: argument %d: %w", i, err)
		}
		cmd[i] = q
	}
	b.WriteString(Restrictions)
	if len(s.From) > 0 {
		for _, f := range s.From {
			if _, err := record.ParsePrefix(f); err != nil {
				return "", "", fmt.Errorf("authkeys: from: %w", err)
			}
		}
		b.WriteString(`,from="` + strings.Join(s.From, ",") + `"`)
	}
	b.WriteString(`,command="` + strings.Join(cmd, " ") + `" `)
	b.WriteString(strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(key)), "\n"))
	b.WriteString(" " + mark)
	return b.String(), mark, nil
}

// ParsePublicKey parses a public key file that holds exactly one plain
// public key: no options, no certificate, nothing after it.
func ParsePublicKey(data []byte) (ssh.PublicKey, error) {
	if len(data) > 16<<10 {
		return nil, errors.New("authkeys: key file too large for a public key")
	}
	key, _, opts, rest, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, errors.New("authkeys: not an OpenSSH public key")
	}
	if len(opts) > 0 {
		return nil, errors.New("authkeys: key file has authorized_keys options; give the plain .pub file")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("authkeys: key file holds more than one key")
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("authkeys: key file holds a certificate; give the plain public key")
	}
	return key, nil
}

// ShellQuote quotes a for a POSIX shell, leaving a plain word as it is. Inside authorized_keys' command="",
// sshd turns \" into " and keeps every other byte, so an argument with a
// double quote, a backslash or a non-printable byte has no unambiguous form
// there and is refused.
func ShellQuote(a string) (string, error) {
	if a == "" {
		return "''", nil
	}
	plain := true
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c < 0x20 || c > 0x7e:
			return "", errors.New("not printable ASCII")
		case c == '"' || c == '\\':
			return "", errors.New(`contains " or \`)
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("_-./=:,+@%", c) >= 0:
		default:
			plain = false
		}
	}
	if plain {
		return a, nil
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'", nil
}

// ErrBlock is returned for a banpush block that Install cannot edit safely.
var ErrBlock = errors.New("authkeys: damaged banpush block")

// Install returns content with line in the banpush block: the earlier
// line with the same mark (its comment, as Line returns it: one peer, or
// one CA) is replaced, or the line is appended to the block, which is
// created at the end of the file if missing. Every line outside the block
// is kept as it was.
func Install(content []byte, mark, line string) ([]byte, error) {
	if !validMark(mark) || !strings.HasSuffix(line, " "+mark) {
		return nil, errors.New("authkeys: line does not carry that mark")
	}
	lines := splitLines(content)
	begin, end, err := block(content)
	if err != nil {
		return nil, err
	}
	var out []string
	if begin < 0 {
		out = append(out, lines...)
		if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
			out[n-1] += "\n"
		}
		out = append(out, BeginMarker+"\n", line+"\n", EndMarker+"\n")
		return []byte(strings.Join(out, "")), nil
	}
	out = append(out, lines[:begin+1]...)
	replaced := false
	for _, l := range lines[begin+1 : end] {
		if strings.HasSuffix(strings.TrimRight(l, "\r\n"), " "+mark) {
			if !replaced {
				out = append(out, line+"\n")
				replaced = true
			}
			continue
		}
		out = append(out, l)
	}
	if !replaced {
		out = append(out, line+"\n")
	}
	out = append(out, lines[end:]...)
	return []byte(strings.Join(out, "")), nil
}

// Bounds on what FromPrefixes reads of an authorized_keys file.
const (
	MaxFileSize = 1 << 20
	maxKeyLines = 10000
)

// FromPrefixes returns the addresses and CIDR prefixes named in the from=
// options of an authorized_keys file: the hosts whose keys may log in,
// which for the receiving account are the fleet's pushers. Hostname and
// wildcard patterns and negations ("!") name no address and are left out.
// At most MaxFileSize bytes and 10,000 keys are read.
func FromPrefixes(content []byte) []netip.Prefix {
	if len(content) > MaxFileSize {
		content = content[:MaxFileSize]
	}
	var out []netip.Prefix
	rest := content
	for i := 0; i < maxKeyLines && len(rest) > 0; i++ {
		_, _, opts, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		rest = next
		for _, o := range opts {
			v, ok := strings.CutPrefix(o, `from="`)
			if !ok || !strings.HasSuffix(v, `"`) {
				continue
			}
			for _, pat := range strings.Split(strings.TrimSuffix(v, `"`), ",") {
				if p, err := record.ParsePrefix(pat); err == nil {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// InstallFile puts line into the banpush block of the authorized_keys file
// at path (see Install), and reports whether it replaced an earlier line
// with the same mark. The file must exist. It reads and writes as EditFile
// does.
func InstallFile(path, mark, line string) (replaced bool, err error) {
	err = EditFile(path, func(old []byte) ([]byte, error) {
		replaced = strings.Contains(string(old), " "+mark+"\n")
		return Install(old, mark, line)
	})
	return replaced, err
}

// EditFile replaces the authorized_keys file at path with what edit makes
// of its content. The file must exist. Root runs this on a file in a
// directory the receiving account owns, so nothing that account could
// change is trusted: the directory is opened without following links it
// controls, the file is read only if it is a plain file of root or of the
// directory's owner, at most MaxFileSize bytes, and the new file is
// written, given the old one's owner and mode 0600, and renamed into place
// through the directory's descriptor (fsutil.OpenDir, Dir.ReadFile,
// Dir.WriteFile). An error from edit is returned as it is, and nothing is
// written.
func EditFile(path string, edit func(old []byte) ([]byte, error)) error {
	d, err := fsutil.OpenDir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("authkeys: %w", err)
	}
	defer d.Close()
	name := filepath.Base(path)
	old, uid, gid, err := d.ReadFile(name, MaxFileSize)
	if err != nil {
		return fmt.Errorf("authkeys: %w", err)
	}
	data, err := edit(old)
	if err != nil {
		return err
	}
	if err := d.WriteFile(name, data, 0o600, uid, gid); err != nil {
		return fmt.Errorf("authkeys: %w", err)
	}
	return nil
}

// ReadFile reads the authorized_keys file at path as EditFile does: never
// through a link the directory's owner controls, never a file of another
// account's or a second name of one, at most MaxFileSize bytes.
func ReadFile(path string) ([]byte, error) {
	d, err := fsutil.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("authkeys: %w", err)
	}
	defer d.Close()
	data, _, _, err := d.ReadFile(filepath.Base(path), MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("authkeys: %w", err)
	}
	return data, nil
}

// OtherCAs returns the marks of the cert-authority lines in the banpush
// block of content other than keep's (banpush-ca=FINGERPRINT each): the
// user CAs trusted besides keep, such as the old CA of a rotation, in the
// order of the file.
func OtherCAs(content []byte, keep string) []string {
	var out []string
	forBlock(content, func(line string) bool {
		if m := caMark(line); m != "" && m != keep {
			out = append(out, m)
		}
		return true
	})
	return out
}

// DropOtherCAs returns content without the cert-authority lines of the
// banpush block other than keep's, and the marks of the lines it dropped.
// Every other line is kept as it was. A damaged block is ErrBlock.
func DropOtherCAs(content []byte, keep string) ([]byte, []string, error) {
	if !validMark(keep) || !strings.HasPrefix(keep, caCommentPrefix) {
		return nil, nil, errors.New("authkeys: not a user CA's mark")
	}
	if _, _, err := block(content); err != nil {
		return nil, nil, err
	}
	var dropped []string
	out := forBlock(content, func(line string) bool {
		if m := caMark(line); m != "" && m != keep {
			dropped = append(dropped, m)
			return false
		}
		return true
	})
	return out, dropped, nil
}

// caMark returns the mark of a cert-authority line Line wrote, its last
// word, or "" if line is no such line.
func caMark(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], caCommentPrefix) {
		return ""
	}
	return f[len(f)-1]
}

// block returns the indexes of the banpush block's markers among lines
// (SplitAfter on newlines), -1 and -1 if there is none.
func block(content []byte) (begin, end int, err error) {
	begin, end = -1, -1
	for i, l := range splitLines(content) {
		switch strings.TrimRight(l, "\r\n") {
		case BeginMarker:
			if begin >= 0 {
				return -1, -1, fmt.Errorf("%w: two banpush blocks in the file; merge them by hand", ErrBlock)
			}
			begin = i
		case EndMarker:
			if begin >= 0 && end < 0 {
				end = i
			}
		}
	}
	if begin >= 0 && end < 0 {
		return -1, -1, fmt.Errorf("%w: banpush block has no end marker; fix the file by hand", ErrBlock)
	}
	return begin, end, nil
}

func splitLines(content []byte) []string {
	lines := strings.SplitAfter(string(content), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	return lines
}

// forBlock calls keep for each line inside the banpush block (without its
// line ending) and returns content without the lines it said no to. A
// damaged block is left alone.
func forBlock(content []byte, keep func(line string) bool) []byte {
	begin, end, err := block(content)
	if err != nil || begin < 0 {
		return content
	}
	lines := splitLines(content)
	var out []string
	out = append(out, lines[:begin+1]...)
	for _, l := range lines[begin+1 : end] {
		if keep(strings.TrimRight(l, "\r\n")) {
			out = append(out, l)
		}
	}
	out = append(out, lines[end:]...)
	return []byte(strings.Join(out, ""))
}

// validMark reports whether mark is one Line writes.
func validMark(mark string) bool {
	if name, ok := strings.CutPrefix(mark, commentPrefix); ok {
		return record.ValidName(name)
	}
	fp, ok := strings.CutPrefix(mark, caCommentPrefix+"SHA256:")
	if !ok || len(fp) != 43 {
		return false
	}
	for i := 0; i < len(fp); i++ {
		c := fp[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
