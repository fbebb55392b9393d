package inventory

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// DefaultConnectTimeout bounds the TCP connect and SSH handshake when no
// ConnectTimeout is configured. OpenSSH has no such default; banpush runs
// under fail2ban's action timeout and needs one.
const DefaultConnectTimeout = 5 * time.Second

// Local is what Resolve needs to know about the account banpush runs as.
// Callers find it with os/user and os.Hostname: under fail2ban, HOME is
// unset.
type Local struct {
	Home     string // home directory, for "~" and %d
	User     string // login name, for %u and the default User
	UID      string // numeric user ID, for %i ("" makes %i an error)
	HostName string // local host name, for %l and %L ("" makes them an error)
}

// Settings are the SSH settings banpush uses to reach one peer, after the
// inventory, the other ssh_config files and OpenSSH's defaults.
type Settings struct {
	Name     string // the peer's name, as in the inventory
	HostName string // where to connect (HostName, or the name)
	Port     int
	User     string
	// IdentityFiles are the private keys to try, in order. As in OpenSSH,
	// when none is configured this is the default list (~/.ssh/id_rsa,
	// ~/.ssh/id_ecdsa, ...), all listed whether they exist or not; the
	// client skips the missing ones, as ssh does.
	IdentityFiles         []string
	CertificateFiles      []string
	IdentitiesOnly        bool
	IdentityAgent         string   // "" (use SSH_AUTH_SOCK), "none", "SSH_AUTH_SOCK", "$VAR" or a path
	UserKnownHostsFiles   []string // empty after "UserKnownHostsFile none"
	GlobalKnownHostsFiles []string
	HostKeyAlias          string
	StrictHostKeyChecking string // "yes", "no", "ask", "accept-new" or "off"
	ConnectTimeout        time.Duration
	// Source maps each keyword that was set by a file to where: "FILE:LINE"
	// for the inventory, the file name for other ssh_config files.
	Source map[string]string
	// Warnings are lines that have no effect because an earlier line set
	// the same keyword first (a `Host *` block above the peer's own block).
	Warnings []string
}

// resolved are the keywords Resolve reads; the rest do not change how
// banpush connects.
var resolved = []string{
	"HostName", "Port", "User", "IdentityFile", "CertificateFile", "IdentitiesOnly",
	"IdentityAgent", "UserKnownHostsFile", "GlobalKnownHostsFile", "HostKeyAlias",
	"StrictHostKeyChecking", "ConnectTimeout",
	"KnownHostsCommand", "PKCS11Provider", "ProxyCommand", "ProxyJump", "RemoteCommand",
}

// multi are the keywords whose values add up across lines and files,
// instead of the first one winning.
var multi = map[string]bool{"IdentityFile": true, "CertificateFile": true}

// Layer is an ssh_config file Resolve reads after the inventory, such as
// ~/.ssh/config and then /etc/ssh/ssh_config.
type Layer struct {
	name string
	cfg  *ssh_config.Config
}

// LoadLayer reads the ssh_config file at path with ParseLayer. A missing
// file gives a nil Layer and a nil error.
func LoadLayer(path string) (*Layer, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	return ParseLayer(path, f)
}

// ParseLayer parses an ssh_config file with github.com/kevinburke/ssh_config.
// It refuses files it cannot read faithfully: Match lines other than
// "Match all" (ssh_config rejects most criteria and misreads the others),
// and files larger than MaxSize. Include lines are followed by ssh_config
// itself. The error is meant as a warning: go on without the layer.
func ParseLayer(name string, r io.Reader) (l *Layer, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory: %s: %w", name, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("inventory: %s: larger than %d bytes; file ignored", name, MaxSize)
	}
	for n, text := range bytes.Split(data, []byte("\n")) {
		f := strings.FieldsFunc(string(text), func(r rune) bool { return r == ' ' || r == '\t' || r == '=' || r == '\r' })
		if len(f) > 0 && strings.EqualFold(f[0], "match") && !(len(f) == 2 && strings.EqualFold(f[1], "all")) {
			return nil, fmt.Errorf("inventory: %s: line %d: Match criteria other than \"all\" are not supported; file ignored", name, n+1)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("inventory: %s: cannot parse; file ignored", name)
		}
	}()
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("inventory: %s: cannot parse; file ignored", name)
	}
	return &Layer{name: name, cfg: cfg}, nil
}

// value is one setting found for a keyword.
type value struct {
	args []string
	src  string
}

// Resolve returns the settings for peer name. The inventory is read first,
// in file order, then each layer in turn: for most keywords the first value
// found wins, as in OpenSSH; IdentityFile and CertificateFile add up.
// OpenSSH's defaults fill in the rest. "~" and the % tokens of ssh_config(5)
// are expanded in HostName, IdentityFile, CertificateFile, IdentityAgent,
// UserKnownHostsFile and GlobalKnownHostsFile (OpenSSH does not expand the
// last one; banpush refuses tokens there).
//
// ProxyJump, ProxyCommand, RemoteCommand, KnownHostsCommand and
// PKCS11Provider are accepted by Parse, so that ssh can use the file, but
// Resolve refuses a peer they apply to (unless set to "none"): banpush
// would otherwise reach that peer differently from ssh.
func (inv *Inventory) Resolve(name string, local Local, layers ...*Layer) (*Settings, error) {
	bi := inv.blockOf(name)
	if bi < 0 {
		return nil, fmt.Errorf("inventory: %s: peer %q: %w", inv.name, sanitize(name), ErrNoPeer)
	}
	s := &Settings{Name: name, Source: map[string]string{}}
	found := map[string][]value{}
	for _, b := range inv.blocks {
		if b.host != "" && b.host != "*" && b.host != name {
			continue
		}
		for i := b.first; i < b.end; i++ {
			l := inv.lines[i]
			if l.kind != keyLine || l.key == "Host" {
				continue
			}
			src := fmt.Sprintf("%s:%d", inv.name, i+1)
			if prev := found[l.key]; len(prev) > 0 && !multi[l.key] {
				if b.host == name {
					s.Warnings = append(s.Warnings, fmt.Sprintf("%s: %s has no effect: line %s set it first, and the first value wins", src, l.key, strings.TrimPrefix(prev[0].src, inv.name+":")))
				}
				continue
			}
			found[l.key] = append(found[l.key], value{args: l.args, src: src})
		}
	}
	for _, ly := range layers {
		if ly == nil {
			continue
		}
		for _, key := range resolved {
			if multi[key] {
				vs, _ := ly.cfg.GetAll(name, key)
				for _, v := range vs {
					found[key] = append(found[key], value{args: []string{v}, src: ly.name})
				}
				continue
			}
			if len(found[key]) > 0 {
				continue
			}
			if v, _ := ly.cfg.Get(name, key); v != "" {
				args := []string{v}
				if key == "UserKnownHostsFile" || key == "GlobalKnownHostsFile" {
					args = strings.Fields(v)
				}
				found[key] = []value{{args: args, src: ly.name}}
			}
		}
	}
	for key, vs := range found {
		s.Source[key] = vs[0].src
		if unsupported[key] && !strings.EqualFold(vs[0].args[0], "none") {
			return nil, fmt.Errorf("inventory: %s: %s is not supported by banpush", vs[0].src, key)
		}
	}
	if err := s.fill(found, local); err != nil {
		return nil, err
	}
	return s, nil
}

// one returns the single argument of the first value for key.
func one(found map[string][]value, key string) (string, string, error) {
	vs := found[key]
	if len(vs) == 0 {
		return "", "", nil
	}
	if len(vs[0].args) != 1 {
		return "", "", fmt.Errorf("inventory: %s: %s takes one value", vs[0].src, key)
	}
	return vs[0].args[0], vs[0].src, nil
}

// fill sets the Settings from the values found, in the order in which
// each setting's %-tokens become known to the next: the host name first,
// then the port and the user, then the files whose paths may use them.
func (s *Settings) fill(found map[string][]value, local Local) error {
	x := &expander{local: local, alias: s.Name}
	for _, step := range []func(map[string][]value, *expander) error{
		s.fillHostName,
		s.fillPort,
		s.fillUser,
		s.fillHostKeyAlias,
		s.fillIdentities,
		s.fillAgent,
		s.fillKnownHosts,
		s.fillStrictHostKeyChecking,
		s.fillConnectTimeout,
	} {
		if err := step(found, x); err != nil {
			return err
		}
	}
	return nil
}

// identityTokens are the %-tokens OpenSSH expands in IdentityFile,
// CertificateFile, IdentityAgent and UserKnownHostsFile.
const identityTokens = "%CdhikLlnpru"

func (s *Settings) fillHostName(found map[string][]value, x *expander) error {
	v, src, err := one(found, "HostName")
	if err != nil {
		return err
	}
	s.HostName = s.Name
	if v != "" {
		if s.HostName, err = x.expand(v, "%h"); err != nil {
			return fmt.Errorf("inventory: %s: HostName: %w", src, err)
		}
		if !ValidHost(s.HostName) {
			return fmt.Errorf("inventory: %s: HostName: not a DNS name or IP address", src)
		}
	}
	x.host = s.HostName
	return nil
}

func (s *Settings) fillPort(found map[string][]value, x *expander) error {
	s.Port = 22
	v, src, err := one(found, "Port")
	if err != nil {
		return err
	}
	if v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 || v[0] == '+' {
			return fmt.Errorf("inventory: %s: Port: want a number from 1 to 65535", src)
		}
		s.Port = p
	}
	x.port = strconv.Itoa(s.Port)
	return nil
}

func (s *Settings) fillUser(found map[string][]value, x *expander) error {
	s.User = x.local.User
	v, src, err := one(found, "User")
	if err != nil {
		return err
	}
	if v != "" {
		if strings.ContainsAny(v, "%@ \t") {
			return fmt.Errorf("inventory: %s: User: tokens, @ and spaces are not supported", src)
		}
		s.User = v
	}
	if s.User == "" {
		return errors.New("inventory: no User configured and the local user name is unknown")
	}
	x.user = s.User
	return nil
}

func (s *Settings) fillHostKeyAlias(found map[string][]value, x *expander) error {
	var err error
	s.HostKeyAlias, _, err = one(found, "HostKeyAlias")
	x.keyAlias = s.HostKeyAlias
	return err
}

// fillIdentities sets the key and certificate files and IdentitiesOnly.
func (s *Settings) fillIdentities(found map[string][]value, x *expander) error {
	for _, v := range found["IdentityFile"] {
		f, err := x.path(v, identityTokens)
		if err != nil {
			return fmt.Errorf("inventory: %s: IdentityFile: %w", v.src, err)
		}
		s.IdentityFiles = append(s.IdentityFiles, f...)
	}
	if len(found["IdentityFile"]) == 0 {
		for _, k := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"} {
			s.IdentityFiles = append(s.IdentityFiles, filepath.Join(x.local.Home, ".ssh", k))
		}
	}
	for _, v := range found["CertificateFile"] {
		f, err := x.path(v, identityTokens)
		if err != nil {
			return fmt.Errorf("inventory: %s: CertificateFile: %w", v.src, err)
		}
		s.CertificateFiles = append(s.CertificateFiles, f...)
	}
	v, src, err := one(found, "IdentitiesOnly")
	if err != nil {
		return err
	}
	if s.IdentitiesOnly, err = yesNo(v); err != nil {
		return fmt.Errorf("inventory: %s: IdentitiesOnly: %w", src, err)
	}
	return nil
}

func (s *Settings) fillAgent(found map[string][]value, x *expander) error {
	v, src, err := one(found, "IdentityAgent")
	if err != nil || v == "" {
		return err
	}
	s.IdentityAgent = v
	if v != "none" && v != "SSH_AUTH_SOCK" && !strings.HasPrefix(v, "$") {
		f, err := x.path(found["IdentityAgent"][0], identityTokens)
		if err != nil {
			return fmt.Errorf("inventory: %s: IdentityAgent: %w", src, err)
		}
		s.IdentityAgent = f[0]
	}
	return nil
}

func (s *Settings) fillKnownHosts(found map[string][]value, x *expander) error {
	var err error
	if s.UserKnownHostsFiles, err = x.files(found, "UserKnownHostsFile", identityTokens,
		"~/.ssh/known_hosts", "~/.ssh/known_hosts2"); err != nil {
		return err
	}
	s.GlobalKnownHostsFiles, err = x.files(found, "GlobalKnownHostsFile", "",
		"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
	return err
}

func (s *Settings) fillStrictHostKeyChecking(found map[string][]value, _ *expander) error {
	s.StrictHostKeyChecking = "ask"
	v, src, err := one(found, "StrictHostKeyChecking")
	if err != nil || v == "" {
		return err
	}
	switch v = strings.ToLower(v); v {
	case "yes", "no", "ask", "accept-new", "off":
		s.StrictHostKeyChecking = v
		return nil
	}
	return fmt.Errorf("inventory: %s: StrictHostKeyChecking: want yes, no, ask, accept-new or off", src)
}

func (s *Settings) fillConnectTimeout(found map[string][]value, _ *expander) error {
	s.ConnectTimeout = DefaultConnectTimeout
	v, src, err := one(found, "ConnectTimeout")
	if err != nil || v == "" || v == "none" {
		return err
	}
	d, err := convtime(v)
	if err != nil {
		return fmt.Errorf("inventory: %s: ConnectTimeout: %w", src, err)
	}
	if d > 0 {
		s.ConnectTimeout = d
	}
	return nil
}

func yesNo(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return false, nil
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, errors.New("want yes or no")
}

// convtime parses an OpenSSH time value: seconds, or a sequence of numbers
// with the units s, m, h, d, w.
func convtime(s string) (time.Duration, error) {
	bad := errors.New("want seconds, or a time like 1m30s")
	if s == "" || len(s) > 32 {
		return 0, bad
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, bad
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, bad
		}
		unit := time.Second
		if i < len(s) {
			switch s[i] {
			case 's', 'S':
			case 'm', 'M':
				unit = time.Minute
			case 'h', 'H':
				unit = time.Hour
			case 'd', 'D':
				unit = 24 * time.Hour
			case 'w', 'W':
				unit = 7 * 24 * time.Hour
			default:
				return 0, bad
			}
			i++
		}
		if time.Duration(n) > (1<<31)*time.Second/unit {
			return 0, bad
		}
		total += time.Duration(n) * unit
		if total > (1<<31)*time.Second {
			return 0, bad
		}
		s = s[i:]
	}
	return total, nil
}

// expander expands "~" and % tokens for one peer.
type expander struct {
	local                             Local
	alias, host, port, user, keyAlias string
}

// files resolves a keyword that lists files, such as UserKnownHostsFile.
func (x *expander) files(found map[string][]value, key, tokens string, defaults ...string) ([]string, error) {
	vs := found[key]
	if len(vs) == 0 {
		vs = []value{{args: defaults, src: "default"}}
	}
	if len(vs[0].args) == 1 && vs[0].args[0] == "none" {
		return nil, nil
	}
	f, err := x.path(vs[0], tokens)
	if err != nil {
		return nil, fmt.Errorf("inventory: %s: %s: %w", vs[0].src, key, err)
	}
	return f, nil
}

// path expands the arguments of v as file names, allowing tokens.
func (x *expander) path(v value, tokens string) ([]string, error) {
	var out []string
	for _, a := range v.args {
		if strings.Contains(a, "${") {
			return nil, errors.New("environment variables are not supported")
		}
		switch {
		case a == "~":
			a = x.local.Home
		case strings.HasPrefix(a, "~/"):
			if x.local.Home == "" {
				return nil, errors.New("~ used but the home directory is unknown")
			}
			a = filepath.Join(x.local.Home, a[2:])
		case strings.HasPrefix(a, "~"):
			return nil, errors.New("~user is not supported: write the path out")
		}
		a, err := x.expand(a, tokens)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(a) {
			return nil, errors.New("not an absolute path (banpush's working directory is not fixed)")
		}
		out = append(out, filepath.Clean(a))
	}
	return out, nil
}

// expand replaces the % tokens in s; allowed lists the token letters that
// may appear ("%" is always allowed).
func (x *expander) expand(s, allowed string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("% at the end of a value: write %% for a literal %")
		}
		c := s[i]
		if c != '%' && strings.IndexByte(allowed, c) < 0 {
			if c <= ' ' || c > '~' {
				return "", errors.New("% followed by a character that is not a token")
			}
			return "", fmt.Errorf("token %%%c is not supported here", c)
		}
		var v string
		switch c {
		case '%':
			v = "%"
		case 'C':
			h := sha1.Sum([]byte(x.local.HostName + x.host + x.port + x.user))
			v = hex.EncodeToString(h[:])
		case 'd':
			v = x.local.Home
		case 'h':
			v = x.host
			if v == "" {
				v = x.alias
			}
		case 'i':
			v = x.local.UID
		case 'k':
			v = x.keyAlias
			if v == "" {
				v = x.alias
			}
		case 'L':
			v, _, _ = strings.Cut(x.local.HostName, ".")
		case 'l':
			v = x.local.HostName
		case 'n':
			v = x.alias
		case 'p':
			v = x.port
		case 'r':
			v = x.user
		case 'u':
			v = x.local.User
		}
		if v == "" {
			return "", fmt.Errorf("token %%%c has no value here", c)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
