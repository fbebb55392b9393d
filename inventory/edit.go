package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
)

// Errors from Add, Remove and Save, wrapped with the file and peer.
var (
	ErrDuplicate = errors.New("peer already exists")
	ErrNoPeer    = errors.New("no such peer")
	ErrInvalid   = errors.New("invalid value")
	ErrChanged   = errors.New("file changed since it was read")
)

// PeerSpec is a peer for Add. Empty fields are left out of the new block,
// so the defaults (a `Host *` block, then OpenSSH's) apply.
type PeerSpec struct {
	Name         string // peer name: [A-Za-z0-9._-]{1,64}, not "." or ".."
	HostName     string // DNS name or IP address (no zone)
	Port         int    // 1-65535, or 0 to leave out
	User         string // remote login name
	IdentityFile string // absolute path, or one starting with "~/"
}

// Check validates every field of p.
func (p PeerSpec) Check() error {
	switch {
	case !record.ValidName(p.Name):
		return fmt.Errorf("inventory: peer name: %w: use 1 to 64 of A-Z a-z 0-9 . _ -", ErrInvalid)
	case !ValidHost(p.HostName):
		return fmt.Errorf("inventory: host: %w: want a DNS name or an IP address", ErrInvalid)
	case p.Port < 0 || p.Port > 65535:
		return fmt.Errorf("inventory: port: %w: want 1 to 65535", ErrInvalid)
	case p.User != "" && !validUser(p.User):
		return fmt.Errorf("inventory: user: %w: use 1 to 32 of A-Z a-z 0-9 . _ -, not starting with -", ErrInvalid)
	case p.IdentityFile != "" && !validPath(p.IdentityFile):
		return fmt.Errorf("inventory: identity file: %w: want an absolute path or one starting with ~/, without spaces, quotes, #, %% or $", ErrInvalid)
	}
	return nil
}

// ValidHost reports whether s is an IP address without a zone, or a DNS
// name made of letters, digits, hyphens and dots.
func ValidHost(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validUser(s string) bool {
	return len(s) <= 32 && s[0] != '-' && s != "." && s != ".." && record.ValidName(s)
}

func validPath(s string) bool {
	if len(s) > 1024 || !(strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~/")) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte("\"'\\#%$", c) >= 0 {
			return false
		}
	}
	return true
}

// Add appends a Host block for p. It goes right after the last peer's
// block, or before the first `Host *` block when there is no peer yet, so
// that the new peer's own settings are not shadowed by defaults written
// below the peers. Blank lines separate it from its neighbours; it uses the
// file's indentation and line ends. Nothing else in the file changes.
func (inv *Inventory) Add(p PeerSpec) error {
	if err := p.Check(); err != nil {
		return err
	}
	for _, q := range inv.Peers() {
		if strings.EqualFold(q.Name, p.Name) {
			return fmt.Errorf("inventory: %s: peer %q: %w (line %d)", inv.name, p.Name, ErrDuplicate, q.Line)
		}
	}
	nl, indent := inv.newline(), inv.indent()
	var b strings.Builder
	b.WriteString("Host " + p.Name + nl)
	b.WriteString(indent + "HostName " + p.HostName + nl)
	if p.Port != 0 {
		b.WriteString(indent + "Port " + strconv.Itoa(p.Port) + nl)
	}
	if p.User != "" {
		b.WriteString(indent + "User " + p.User + nl)
	}
	if p.IdentityFile != "" {
		b.WriteString(indent + "IdentityFile " + p.IdentityFile + nl)
	}
	at := inv.insertAt()
	pos := len(inv.data)
	if at < len(inv.lines) {
		pos = inv.lines[at].start
	}
	var text []byte
	if at > 0 {
		if pos == len(inv.data) && inv.data[pos-1] != '\n' {
			text = append(text, nl...)
		}
		if inv.lines[at-1].kind != blankLine {
			text = append(text, nl...)
		}
	}
	text = append(text, b.String()...)
	if at < len(inv.lines) && inv.lines[at].kind != blankLine {
		text = append(text, nl...)
	}
	return inv.replace(pos, pos, text)
}

// Remove deletes the peer's block: its Host line, every line up to its last
// setting, the comment lines directly above the Host line (when a blank
// line precedes them, so a file header or a comment that may belong to the
// block above stays), and the comment lines directly below its last
// setting (when a blank line or the end of the file follows them). Blank
// lines are then collapsed so that no double blank line is left. Every
// other line stays byte for byte.
func (inv *Inventory) Remove(name string) error {
	bi := inv.blockOf(name)
	if bi < 0 {
		return fmt.Errorf("inventory: %s: peer %q: %w", inv.name, sanitize(name), ErrNoPeer)
	}
	start, end := inv.extent(bi)
	if start == 0 || inv.lines[start-1].kind == blankLine {
		for end < len(inv.lines) && inv.lines[end].kind == blankLine {
			end++
		}
	}
	if end == len(inv.lines) {
		for start > 0 && inv.lines[start-1].kind == blankLine {
			start--
		}
	}
	from, to := inv.lines[start].start, len(inv.data)
	if end < len(inv.lines) {
		to = inv.lines[end].start
	}
	return inv.replace(from, to, nil)
}

// replace swaps data[from:to] for text and parses the result again, so an
// edit can never leave an inventory that Parse would refuse.
func (inv *Inventory) replace(from, to int, text []byte) error {
	data := make([]byte, 0, len(inv.data)-(to-from)+len(text))
	data = append(data, inv.data[:from]...)
	data = append(data, text...)
	data = append(data, inv.data[to:]...)
	if len(data) > MaxSize {
		return fmt.Errorf("inventory: %s: would grow larger than %d bytes", inv.name, MaxSize)
	}
	n, err := parse(inv.name, data)
	if err != nil {
		return fmt.Errorf("inventory: %s: edit refused: %w", inv.name, err)
	}
	inv.data, inv.lines, inv.blocks = n.data, n.lines, n.blocks
	return nil
}

// extent returns the lines [start, end) that belong to block bi.
func (inv *Inventory) extent(bi int) (start, end int) {
	b := inv.blocks[bi]
	start = b.first
	k := start
	for k > 0 && inv.lines[k-1].kind == commentLine {
		k--
	}
	if k < start && k > 0 && inv.lines[k-1].kind == blankLine {
		start = k
	}
	last := b.first
	for i := b.first; i < b.end; i++ {
		if inv.lines[i].kind == keyLine {
			last = i
		}
	}
	end = last + 1
	k = end
	for k < b.end && inv.lines[k].kind == commentLine {
		k++
	}
	if k > end && (k == len(inv.lines) || inv.lines[k].kind == blankLine) {
		end = k
	}
	return start, end
}

// insertAt returns the index of the line a new block goes before.
func (inv *Inventory) insertAt() int {
	lastPeer, firstStar := -1, -1
	for i, b := range inv.blocks {
		switch b.host {
		case "":
		case "*":
			if firstStar < 0 {
				firstStar = i
			}
		default:
			lastPeer = i
		}
	}
	switch {
	case lastPeer >= 0:
		_, end := inv.extent(lastPeer)
		return end
	case firstStar >= 0:
		start, _ := inv.extent(firstStar)
		return start
	}
	return len(inv.lines)
}

// newline returns the file's line end: CRLF if its first line ends so.
func (inv *Inventory) newline() string {
	if len(inv.lines) > 0 {
		l := inv.lines[0]
		if bytes.HasSuffix(inv.data[l.start:l.end], []byte("\r\n")) {
			return "\r\n"
		}
	}
	return "\n"
}

// indent returns the indentation of the first indented setting inside a
// Host block, or four spaces.
func (inv *Inventory) indent() string {
	for _, b := range inv.blocks {
		if b.host == "" {
			continue
		}
		for _, l := range inv.lines[b.first+1 : b.end] {
			if l.kind == keyLine && l.indent != "" {
				return l.indent
			}
		}
	}
	return "    "
}

// sanitize returns name if it is safe to show, or a placeholder.
func sanitize(name string) string {
	if record.ValidName(name) || name == "*" {
		return name
	}
	return "(unsafe name)"
}

// Save writes the inventory to the file it was read from, atomically
// (temporary file, fsync, rename, fsync of the directory), keeping the
// file's mode; a new file gets mode 0600 and, if needed, its directory is
// created with mode 0755. If the file changed on disk since Load read it,
// Save fails with ErrChanged and writes nothing.
func (inv *Inventory) Save() error {
	cur, err := os.ReadFile(inv.name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		cur = nil
	case err != nil:
		return fmt.Errorf("inventory: %w", err)
	}
	if !bytes.Equal(cur, inv.orig) || (cur == nil) != inv.new {
		return fmt.Errorf("inventory: %s: %w; run the command again", inv.name, ErrChanged)
	}
	if err := os.MkdirAll(filepath.Dir(inv.name), 0o755); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if err := fsutil.WriteAtomic(inv.name, inv.data, 0o600); err != nil {
		return fmt.Errorf("inventory: %s: %w", inv.name, err)
	}
	inv.orig, inv.new = bytes.Clone(inv.data), false
	return nil
}
