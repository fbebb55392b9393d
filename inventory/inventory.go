// Package inventory reads and edits banpush's list of peers, a file in
// ssh_config(5) syntax, and resolves the SSH settings banpush uses for
// each peer.
//
// # The file
//
// The inventory is an ordinary ssh_config file, so `ssh -F INVENTORY NAME`
// reaches a peer the way banpush does:
//
//	# Defaults for every peer.
//	Host *
//	    User banpush
//	    IdentityFile /etc/banpush/id_ed25519
//
//	Host web1
//	    HostName 192.0.2.10
//
// Every `Host NAME` line names one peer. NAME must be a safe name
// ([A-Za-z0-9._-], 1 to 64 bytes, not "." or ".."); names that differ only
// in case count as duplicates. `Host *` blocks hold defaults, and so do
// settings before the first Host line. Any other Host line (several
// patterns, wildcards, negations) is an error: it would leave the reader
// unsure which peers exist. Only standard OpenSSH client keywords are
// accepted. `Match` is refused (banpush cannot evaluate its criteria) and so
// is `Include` (the file must say everything itself, and editing must not
// depend on other files). Lines are at most 4096 bytes, the file at most
// 1 MiB, and it holds no control characters other than tab and the CR of
// CRLF line ends.
//
// As in OpenSSH, the first value obtained for a keyword wins, in file
// order: a `Host *` block placed above a peer overrides that peer's own
// settings. Resolve reports such shadowed lines as warnings.
//
// # Trust
//
// The inventory is written by the administrator, but Parse trusts nothing
// in it: input is bounded, every line is checked, and errors name the file
// and the line rather than repeating its content. The other ssh_config
// files Resolve reads (the user's and the system's) are parsed with
// github.com/kevinburke/ssh_config; a problem in them is reported as a
// warning, never as an error that stops banpush.
//
// # Editing
//
// Add and Remove edit the file as text: every other byte of the file stays
// as it was, comments, blank lines, indentation and line ends included.
// Save replaces the file atomically.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/kevinburke/ssh_config"
)

// Limits on the inventory file.
const (
	MaxSize    = 1 << 20 // bytes in the whole file
	MaxLineLen = 4096    // bytes in one line, without its line end
)

// ErrNotExist is wrapped by the error Load returns when the file is missing.
var ErrNotExist = errors.New("inventory file does not exist")

// SyntaxError is a problem at a line of the inventory.
type SyntaxError struct {
	File string // the name given to Parse or Load
	Line int    // 1-based
	Msg  string // never contains text from the file, except checked names
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("inventory: %s: line %d: %s", e.File, e.Line, e.Msg)
}

// Peer is one peer of the inventory.
type Peer struct {
	Name string
	Line int // line of its Host line
}

// Inventory is a parsed inventory file. Its methods are not safe for
// concurrent use.
type Inventory struct {
	name   string
	data   []byte
	lines  []line
	blocks []block
	orig   []byte // the file as read, to detect concurrent changes in Save
	new    bool   // made by New: Save expects no file
}

type lineKind int

const (
	blankLine   lineKind = iota // nothing but spaces and tabs
	commentLine                 // a comment, possibly indented
	keyLine                     // a keyword and its arguments
)

// line is one line of the file.
type line struct {
	start, end int // byte offsets in data; end includes the line end
	kind       lineKind
	key        string   // canonical keyword, for keyLine
	args       []string // arguments, unquoted, for keyLine
	indent     string   // leading spaces and tabs
}

// block is a run of lines governed by one Host line, or the settings
// before the first Host line.
type block struct {
	host  string // peer name, "*", or "" for the settings before any Host line
	first int    // index of the Host line in lines (of the first line for "")
	end   int    // index just past the block's last line
}

// Load reads and parses the inventory at path. A missing file gives an
// error that wraps ErrNotExist.
func Load(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("inventory: %s: %w", path, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// New returns an empty inventory that Save will write to name.
func New(name string) *Inventory {
	return &Inventory{name: name, new: true}
}

// Parse reads an inventory from r. name is used in errors and by Save.
func Parse(name string, r io.Reader) (*Inventory, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory: %s: %w", name, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("inventory: %s: larger than %d bytes", name, MaxSize)
	}
	inv, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	inv.orig = data
	return inv, nil
}

func parse(name string, data []byte) (*Inventory, error) {
	inv := &Inventory{name: name, data: data}
	lines, err := scan(data)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			se.File = name
		}
		return nil, err
	}
	inv.lines = lines
	if err := inv.build(); err != nil {
		return nil, err
	}
	if err := inv.crossCheck(); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) errorf(i int, format string, args ...any) error {
	return &SyntaxError{File: inv.name, Line: i + 1, Msg: fmt.Sprintf(format, args...)}
}

// build groups lines into blocks and checks Host lines and keywords.
func (inv *Inventory) build() error {
	seen := map[string]int{} // lower-case name -> line index
	cur := block{host: "", first: 0}
	for i, l := range inv.lines {
		if l.kind != keyLine {
			continue
		}
		switch l.key {
		case "Match":
			return inv.errorf(i, "Match is not supported in the inventory: use one Host block per peer")
		case "Include":
			return inv.errorf(i, "Include is not supported in the inventory: write the settings here")
		case "Host":
		default:
			if len(l.args) == 0 {
				return inv.errorf(i, "%s needs a value", l.key)
			}
			continue
		}
		cur.end = i
		if cur.host != "" || cur.end > cur.first {
			inv.blocks = append(inv.blocks, cur)
		}
		if len(l.args) != 1 {
			return inv.errorf(i, "a Host line names one peer, or is \"Host *\" for defaults")
		}
		h := l.args[0]
		switch {
		case h == "*":
		case strings.ContainsAny(h, "*?!,"):
			return inv.errorf(i, "a Host line names one peer, or is \"Host *\" for defaults; patterns are not supported")
		case !record.ValidName(h):
			return inv.errorf(i, "unsafe peer name: use 1 to 64 of A-Z a-z 0-9 . _ -")
		default:
			k := strings.ToLower(h)
			if j, dup := seen[k]; dup {
				return inv.errorf(i, "duplicate peer %q (first at line %d)", h, j+1)
			}
			seen[k] = i
		}
		cur = block{host: h, first: i}
	}
	cur.end = len(inv.lines)
	if cur.host != "" || cur.end > cur.first {
		inv.blocks = append(inv.blocks, cur)
	}
	return nil
}

// crossCheck parses the file with github.com/kevinburke/ssh_config too and
// requires it to see the same Host lines and keywords. Tools built on that
// package, and banpush's own SSH layer, then agree with Parse.
func (inv *Inventory) crossCheck() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inventory: %s: ssh_config cannot parse the file", inv.name)
		}
	}()
	cfg, derr := ssh_config.DecodeBytes(inv.data)
	if derr != nil {
		return fmt.Errorf("inventory: %s: ssh_config cannot parse the file", inv.name)
	}
	var keys []string
	for _, h := range cfg.Hosts {
		for _, n := range h.Nodes {
			if kv, ok := n.(*ssh_config.KV); ok {
				keys = append(keys, strings.ToLower(kv.Key))
			}
		}
	}
	var hosts []string
	for _, h := range cfg.Hosts[1:] {
		if len(h.Patterns) != 1 {
			hosts = append(hosts, "")
			continue
		}
		hosts = append(hosts, h.Patterns[0].String())
	}
	k, hi := 0, 0
	for i, l := range inv.lines {
		if l.kind != keyLine {
			continue
		}
		if l.key == "Host" {
			if hi >= len(hosts) || strings.TrimRight(hosts[hi], " \t") != l.args[0] {
				return inv.errorf(i, "write the Host name plainly, without quotes or escapes")
			}
			hi++
			continue
		}
		if k >= len(keys) || keys[k] != strings.ToLower(l.key) {
			return inv.errorf(i, "ssh_config reads this line differently")
		}
		k++
	}
	if k != len(keys) || hi != len(hosts) {
		return fmt.Errorf("inventory: %s: ssh_config reads the file differently", inv.name)
	}
	return nil
}

// Name returns the file name given to Load, Parse or New.
func (inv *Inventory) Name() string { return inv.name }

// Bytes returns the file's content, with any edits.
func (inv *Inventory) Bytes() []byte { return bytes.Clone(inv.data) }

// Peers returns the peers in file order.
func (inv *Inventory) Peers() []Peer {
	var ps []Peer
	for _, b := range inv.blocks {
		if b.host != "" && b.host != "*" {
			ps = append(ps, Peer{Name: b.host, Line: b.first + 1})
		}
	}
	return ps
}

// Peer returns the peer called name, matched exactly.
func (inv *Inventory) Peer(name string) (Peer, bool) {
	if i := inv.blockOf(name); i >= 0 {
		return Peer{Name: name, Line: inv.blocks[i].first + 1}, true
	}
	return Peer{}, false
}

func (inv *Inventory) blockOf(name string) int {
	if name == "" || name == "*" {
		return -1
	}
	for i, b := range inv.blocks {
		if b.host == name {
			return i
		}
	}
	return -1
}

// scan splits data into lines and tokenizes each one the way OpenSSH does:
// a keyword, then optional "=", then arguments separated by spaces or tabs,
// with double or single quotes around arguments that hold spaces, and a
// comment starting at a "#" that begins a word.
func scan(data []byte) ([]line, error) {
	if !utf8.Valid(data) {
		return nil, &SyntaxError{Line: 1 + bytes.Count(data[:firstInvalid(data)], []byte("\n")), Msg: "not valid UTF-8"}
	}
	var lines []line
	for off := 0; off < len(data); {
		n := len(lines) + 1
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
			end += off
		} else {
			end = len(data)
		}
		text := data[off:end]
		if len(text) > 0 && text[len(text)-1] == '\r' && end < len(data) {
			text = text[:len(text)-1]
		}
		if len(text) > MaxLineLen {
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("longer than %d bytes", MaxLineLen)}
		}
		for _, c := range text {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, &SyntaxError{Line: n, Msg: "control character"}
			}
		}
		l, err := tokenize(string(text))
		if err != nil {
			return nil, &SyntaxError{Line: n, Msg: err.Error()}
		}
		l.start, l.end = off, next
		lines = append(lines, l)
		off = next
	}
	return lines, nil
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func tokenize(s string) (line, error) {
	var l line
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	l.indent = s[:i]
	if i == len(s) {
		return l, nil
	}
	if s[i] == '#' {
		l.kind = commentLine
		return l, nil
	}
	j := i
	for j < len(s) && !isSpace(s[j]) && s[j] != '=' {
		j++
	}
	word := s[i:j]
	key, ok := keywords[strings.ToLower(word)]
	if !ok {
		if isPlainWord(word) {
			return l, fmt.Errorf("unknown keyword %q", word)
		}
		return l, errors.New("unknown keyword")
	}
	l.kind, l.key = keyLine, key
	for j < len(s) && isSpace(s[j]) {
		j++
	}
	if j < len(s) && s[j] == '=' {
		j++
	}
	args, err := splitArgs(s[j:])
	if err != nil {
		return l, err
	}
	l.args = args
	return l, nil
}

// isPlainWord reports whether s may be repeated in an error message.
func isPlainWord(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// splitArgs splits the arguments of a line like OpenSSH's argv_split:
// quotes group, a backslash escapes a quote, a backslash or (outside
// quotes) a space, and an unquoted "#" at the start of a word ends the
// line. banpush is stricter in one way: a "#" inside a word, even quoted,
// is refused, because other ssh_config readers take it as a comment.
func splitArgs(s string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] == '#' {
			return args, nil
		}
		var arg strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			if quote == 0 && isSpace(c) {
				break
			}
			if c == '\\' && i+1 < len(s) {
				n := s[i+1]
				if n == '\'' || n == '"' || n == '\\' || (quote == 0 && n == ' ') {
					arg.WriteByte(n)
					i++
					continue
				}
			}
			switch {
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote != 0 && c == quote:
				quote = 0
			case c == '#':
				return nil, errors.New("\"#\" inside a value: put a space before a comment")
			default:
				arg.WriteByte(c)
			}
		}
		if quote != 0 {
			return nil, errors.New("unterminated quote")
		}
		args = append(args, arg.String())
	}
}
