// Package record defines the one-line ban record that banpush queues,
// sends and receives, and the policy that decides which addresses may be
// banned at all.
//
// The record grammar is deliberately tiny:
//
//	IP [jail=NAME] [time=UNIXSECONDS] [bantime=SECONDS] [failures=N]
//
// (failures only in a failure report: how many times the address failed
// at the origin in the second that ends at time)
//
// fields separated by exactly one space, printable ASCII only, at most
// MaxLineLen bytes. Parse trusts nothing: it is the first code that sees
// bytes sent by a peer. Errors are Refusal values with fixed texts that never
// contain the input, so callers may log them safely.
package record

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// MaxLineLen is the longest record line accepted, without its newline.
const MaxLineLen = 512

// Bounds of the numeric fields. MaxTime is 9999-12-31T23:59:59Z; MaxBanTime
// is about 68 years, more than any fail2ban bantime.increment produces.
const (
	MaxTime    = 253402300799
	MaxBanTime = 1<<31 - 1
	// Permanent is the bantime fail2ban uses for a ban that never expires.
	Permanent = -1
	// MaxFailures bounds a failure report's count: more failures of one
	// address in one second than any jail's maxretry.
	MaxFailures = 1000
)

// Record is one ban. The zero values of Jail, Time and BanTime mean "not
// given"; Addr is always valid, unmapped and without a zone once parsed.
type Record struct {
	Addr    netip.Addr
	Jail    string
	Time    int64 // when the origin banned it, Unix seconds; 0 if unknown
	BanTime int64 // seconds, or Permanent; 0 if unknown
	// Failures is, in a failure report (wire.Fail), how many failures of
	// the address it stands for; 0 if not given (one).
	Failures int
}

// Refusal is the reason a record or an address is refused. Its text is fixed
// and never contains the refused input.
type Refusal string

func (r Refusal) Error() string { return string(r) }

// Reasons for refusing a record. The texts are part of banpush's interface:
// receivers print them and tests match them.
const (
	ErrNotPrintable  Refusal = "not printable ASCII"
	ErrTooLong       Refusal = "line too long"
	ErrEmpty         Refusal = "empty record"
	ErrIncomplete    Refusal = "incomplete record (no newline)"
	ErrBadAddr       Refusal = "not an IP address"
	ErrZone          Refusal = "address has a zone"
	ErrPrefix        Refusal = "address has a prefix length"
	ErrBadField      Refusal = "malformed field"
	ErrUnknownField  Refusal = "unknown field"
	ErrDupField      Refusal = "duplicate field"
	ErrBadJail       Refusal = "bad jail name"
	ErrBadTime       Refusal = "bad time"
	ErrBadBanTime    Refusal = "bad bantime"
	ErrBadFailures   Refusal = "bad failures"
	ErrLoopback      Refusal = "loopback address"
	ErrUnspecified   Refusal = "unspecified address"
	ErrMulticast     Refusal = "multicast address"
	ErrLinkLocal     Refusal = "link-local address"
	ErrBroadcast     Refusal = "broadcast address"
	ErrReserved      Refusal = "reserved address"
	ErrNotGlobal     Refusal = "special-purpose address, not globally reachable"
	ErrIPv4Compat    Refusal = "deprecated IPv4-compatible address"
	ErrPrivate       Refusal = "private address"
	ErrCGNAT         Refusal = "shared address space (CGNAT)"
	ErrIgnored       Refusal = "address in an --ignore range"
	ErrLocal         Refusal = "address of this host"
	ErrRemote        Refusal = "address of the connecting peer"
	ErrPeer          Refusal = "address of a peer"
	ErrRateLimit     Refusal = "rate limit"
	ErrDuplicateAddr Refusal = "duplicate address in batch"
	ErrStale         Refusal = "unbanned here recently (stale ban)"
	ErrUnbanDenied   Refusal = "unban not allowed for this key"
	ErrFleetOff      Refusal = "failure reports not accepted for this key"
	ErrOldFailure    Refusal = "failure older than the fleet window"
	ErrNotAReport    Refusal = "failures field outside a failure report"
)

// Parse parses one record line, without its trailing newline.
func Parse(line []byte) (Record, error) {
	if len(line) > MaxLineLen {
		return Record{}, ErrTooLong
	}
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return Record{}, ErrNotPrintable
		}
	}
	if len(line) == 0 {
		return Record{}, ErrEmpty
	}
	fields := strings.Split(string(line), " ")
	addr, err := ParseAddr(fields[0])
	if err != nil {
		return Record{}, err
	}
	r := Record{Addr: addr}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		key, val, ok := strings.Cut(f, "=")
		if !ok || key == "" || val == "" {
			return Record{}, ErrBadField
		}
		if seen[key] {
			return Record{}, ErrDupField
		}
		seen[key] = true
		switch key {
		case "jail":
			if !ValidName(val) {
				return Record{}, ErrBadJail
			}
			r.Jail = val
		case "time":
			n, ok := parseInt(val)
			if !ok || n < 1 || n > MaxTime {
				return Record{}, ErrBadTime
			}
			r.Time = n
		case "bantime":
			n, ok := parseInt(val)
			if !ok || n == 0 || n < Permanent || n > MaxBanTime {
				return Record{}, ErrBadBanTime
			}
			r.BanTime = n
		case "failures":
			n, ok := parseInt(val)
			if !ok || n < 1 || n > MaxFailures {
				return Record{}, ErrBadFailures
			}
			r.Failures = int(n)
		default:
			return Record{}, ErrUnknownField
		}
	}
	return r, nil
}

// ParseAddr parses one IP address as the record grammar allows it: no zone,
// no prefix length, IPv4-mapped IPv6 unmapped. It applies no policy.
func ParseAddr(s string) (netip.Addr, error) {
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, ErrZone
	}
	if strings.IndexByte(s, '/') >= 0 {
		return netip.Addr{}, ErrPrefix
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, ErrBadAddr
	}
	return a.Unmap(), nil
}

// parseInt parses a canonical decimal integer: an optional '-', then digits
// with no leading zero, at most 19 of them.
func parseInt(s string) (int64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 19 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Printable returns s with every byte outside printable ASCII replaced by
// '?' (a multi-byte character becomes one '?'): untrusted text made safe to
// quote in one line of a message or a log.
func Printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return strings.Map(func(r rune) rune {
				if r < ' ' || r > '~' {
					return '?'
				}
				return r
			}, s)
		}
	}
	return s
}

// ValidName reports whether s is a safe name for a peer or a jail:
// 1 to 64 characters from [A-Za-z0-9._-]. Such a name is safe in a file
// name (it is never "." or ".."), a log line and a shell word.
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// AppendText appends the record's wire form, without a newline, to b. The
// output always parses back to the same record.
func (r Record) AppendText(b []byte) []byte {
	return r.AppendFields(r.Addr.AppendTo(b))
}

// AppendFields appends the optional fields that are set, each with a
// leading space, in wire order: " jail=J time=T bantime=B failures=N".
func (r Record) AppendFields(b []byte) []byte {
	if r.Jail != "" {
		b = append(b, " jail="...)
		b = append(b, r.Jail...)
	}
	if r.Time != 0 {
		b = append(b, " time="...)
		b = strconv.AppendInt(b, r.Time, 10)
	}
	if r.BanTime != 0 {
		b = append(b, " bantime="...)
		b = strconv.AppendInt(b, r.BanTime, 10)
	}
	if r.Failures != 0 {
		b = append(b, " failures="...)
		b = strconv.AppendInt(b, int64(r.Failures), 10)
	}
	return b
}

// AddFailures merges two failure reports of one address: the sum of their
// failures (each at least one, the sum at most MaxFailures), at the later
// time, with that report's jail.
func AddFailures(a, b Record) Record {
	n := min(max(a.Failures, 1)+max(b.Failures, 1), MaxFailures)
	if b.Time > a.Time {
		a.Time, a.Jail = b.Time, b.Jail
	}
	a.Failures = n
	return a
}

// String returns the record's wire form.
func (r Record) String() string { return string(r.AppendText(nil)) }

// Policy decides which well-formed addresses may be banned. The zero Policy
// refuses every special-purpose and private range.
type Policy struct {
	AllowPrivate bool           // accept RFC 1918, RFC 4193 and CGNAT addresses
	Ignore       []netip.Prefix // never ban these (like fail2ban's ignoreip)
	Peers        []netip.Prefix // the fleet's own hosts: never banned here
	Local        []netip.Addr   // this host's own interface addresses
	Remote       netip.Addr     // the address the SSH connection comes from
}

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	class4     = netip.MustParsePrefix("240.0.0.0/4")
	siteLocal6 = netip.MustParsePrefix("fec0::/10")
	broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

	// IPv6 forms that carry an IPv4 address (RFC 4291, 6052, 3056, 4380).
	ipv4Compat = netip.MustParsePrefix("::/96")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	teredo     = netip.MustParsePrefix("2001::/32")

	// globalUnicast is the only IPv6 space IANA allocates for global
	// unicast (RFC 4291 section 2.4, the IANA IPv6 Address Space
	// registry). Everything else is reserved by the IETF, or has a
	// purpose checked before it (ULA, link-local, multicast, ...): the
	// IPv4-translated form of SIIT (::ffff:0:a.b.c.d, RFC 2765, obsoleted
	// by RFC 6145) among them. NAT64's well-known prefix, in ::/8, is the
	// one exception (checked as the IPv4 address it carries).
	globalUnicast = netip.MustParsePrefix("2000::/3")

	// protocolAssignments (RFC 2928) is not globally reachable in the IANA
	// IPv6 Special-Purpose Address Registry, except the sub-allocations in
	// protocolGlobal, which the registry marks globally reachable, and
	// Teredo (2001::/32, "N/A"), which is checked as the IPv4 address of
	// its client.
	protocolAssignments = netip.MustParsePrefix("2001::/23")
	protocolGlobal      = []netip.Prefix{
		netip.MustParsePrefix("2001:1::1/128"),   // Port Control Protocol anycast (RFC 7723)
		netip.MustParsePrefix("2001:1::2/128"),   // TURN anycast (RFC 8155)
		netip.MustParsePrefix("2001:1::3/128"),   // DNS-SD service registration protocol anycast (RFC 9665)
		netip.MustParsePrefix("2001:3::/32"),     // AMT (RFC 7450)
		netip.MustParsePrefix("2001:4:112::/48"), // AS112-v6 (RFC 7535)
		netip.MustParsePrefix("2001:20::/28"),    // ORCHIDv2 (RFC 7343)
		netip.MustParsePrefix("2001:30::/28"),    // drone remote ID entity tags (RFC 9374)
	}

	// notGlobal are special-purpose ranges of the IANA IPv4 and IPv6
	// Special-Purpose Address Registries that are not globally reachable
	// and that the checks above do not cover. Documentation ranges
	// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32,
	// 3fff::/20) are left allowed: they never reach the Internet either,
	// and tests and examples use them.
	notGlobal = []netip.Prefix{
		netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments (RFC 6890)
		netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking (RFC 2544)
		netip.MustParsePrefix("64:ff9b:1::/48"), // local-use IPv4/IPv6 translation (RFC 8215)
		netip.MustParsePrefix("100::/64"),       // discard-only (RFC 6666)
		netip.MustParsePrefix("2001:2::/48"),    // benchmarking (RFC 5180)
		netip.MustParsePrefix("5f00::/16"),      // segment routing SIDs (RFC 9602)
	}
)

// Check returns nil if a may be banned, or the Refusal that says why not.
// a must come from ParseAddr (or be unmapped already). An IPv6 address that
// carries an IPv4 one (NAT64, 6to4, Teredo) is checked as that IPv4
// address too, so that no address this policy refuses gets banned in
// another form.
func (p *Policy) Check(a netip.Addr) error {
	a = a.Unmap()
	if err := p.checkRange(a); err != nil {
		return err
	}
	if v4, ok := embeddedIPv4(a); ok {
		if err := p.Check(v4); err != nil {
			return err
		}
	}
	for _, pfx := range p.Ignore {
		if pfx.Contains(a) {
			return ErrIgnored
		}
	}
	for _, pfx := range p.Peers {
		if pfx.Contains(a) {
			return ErrPeer
		}
	}
	for _, l := range p.Local {
		if l.Unmap() == a {
			return ErrLocal
		}
	}
	if p.Remote.IsValid() && p.Remote.Unmap() == a {
		return ErrRemote
	}
	return nil
}

// checkRange refuses the special-purpose ranges.
func (p *Policy) checkRange(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return ErrBadAddr
	case a.IsLoopback():
		return ErrLoopback
	case a.IsUnspecified():
		return ErrUnspecified
	case a.IsMulticast():
		return ErrMulticast
	case a.IsLinkLocalUnicast():
		return ErrLinkLocal
	case a == broadcast4:
		return ErrBroadcast
	case thisNet.Contains(a), class4.Contains(a), siteLocal6.Contains(a):
		return ErrReserved
	case ipv4Compat.Contains(a):
		return ErrIPv4Compat
	case !p.AllowPrivate && a.IsPrivate():
		return ErrPrivate
	case !p.AllowPrivate && cgnat.Contains(a):
		return ErrCGNAT
	}
	for _, pfx := range notGlobal {
		if pfx.Contains(a) {
			return ErrNotGlobal
		}
	}
	if a.Is6() && protocolAssignments.Contains(a) && !teredo.Contains(a) && !containsAny(protocolGlobal, a) {
		return ErrNotGlobal
	}
	if a.Is6() && !globalUnicast.Contains(a) && !nat64.Contains(a) && !a.IsPrivate() {
		return ErrReserved
	}
	return nil
}

func containsAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 address a NAT64 (64:ff9b::/96, its last 32
// bits), 6to4 (2002::/16, the 32 bits after the prefix) or Teredo
// (2001::/32, RFC 4380 section 4: the client's address, its last 32 bits
// inverted) address carries. A Teredo address's server (bits 32 to 63) is
// not the host behind it and is left alone.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case !a.Is6():
		return netip.Addr{}, false
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredo.Contains(a):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// FormatPrefix writes a prefix as ParsePrefix reads it, a single address
// bare.
func FormatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParsePrefix parses an --ignore value: a CIDR prefix or a single address.
// IPv4-mapped prefixes are unmapped so that they match unmapped addresses.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Prefix{}, ErrZone
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not a CIDR prefix")
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, errors.New("IPv4-mapped prefix shorter than ::ffff:0:0/96")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p.Masked(), nil
}
