package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logline"
	"github.com/banpush/banpush/sshpush/record"
)

// Receiving are contrib's receiving jails and the kind of line each one's
// filter bans on (contrib/fail2ban/filter.d; logline's filter test proves
// which kind each filter matches). Report and unban lines are no jail's.
var Receiving = []struct {
	Jail string
	Kind logline.Kind
}{{"banpush", logline.Ban}, {"banpush-quorum", logline.Quorum}, {"banpush-fleet", logline.Fleet}}

// IsReceiving reports whether jail is one of Receiving.
func IsReceiving(jail string) bool {
	for _, r := range Receiving {
		if r.Jail == jail {
			return true
		}
	}
	return false
}

// Jail is one receiving jail as fail2ban's configuration sets it up: the
// fast path bans on the lines of its kind that its filter matches, for its
// bantime, never an address of its ignoreip.
type Jail struct {
	Name string
	Kind logline.Kind
	// Filter is the jail's failregex, compiled (CompileFailregex): a line
	// is banned on only if one of them matches what follows its time
	// stamp, as fail2ban would read it.
	Filter []*regexp.Regexp
	// BanTime is how long a ban lasts from the line's time stamp; 0 is a
	// permanent ban (fail2ban's bantime -1, or any negative one).
	BanTime time.Duration
	// Ignore is the jail's ignoreip, names resolved.
	Ignore []netip.Prefix
	// LogPaths are the logs the jail watches: the fast path follows one
	// of them, or the jail's settings are not meant for its lines.
	LogPaths []string
}

// maxFailregex bounds one failregex's length.
const maxFailregex = 4096

// tagAddr is what the address tags of a failregex become: one token, the
// address, which the line's parsed address must then equal.
const tagAddr = `(?P<addr>[0-9A-Fa-f.:]{2,45})`

// tags are the failregex tags the fast path understands: the address
// ones. A filter with any other tag is refused (CompileFailregex).
var tags = map[string]string{"<ADDR>": tagAddr, "<IP4>": tagAddr, "<IP6>": tagAddr, "<HOST>": tagAddr}

var tagRE = regexp.MustCompile(`<[A-Za-z0-9_-]+>`)

// CompileFailregex compiles one failregex of fail2ban's filters (Python's
// syntax) as Go's regexp: the address tags become one capture, named
// addr; any other tag, or syntax Go's RE2 lacks (look-around,
// back-references), is an error. contrib's filters use none.
func CompileFailregex(s string) (*regexp.Regexp, error) {
	if len(s) > maxFailregex {
		return nil, errors.New("firewall: failregex too long")
	}
	var bad string
	expanded := tagRE.ReplaceAllStringFunc(s, func(t string) string {
		if r, ok := tags[t]; ok {
			return r
		}
		bad = t
		return t
	})
	if bad != "" {
		return nil, fmt.Errorf("firewall: failregex tag %s: only <ADDR>, <IP4>, <IP6> and <HOST> are understood", record.Printable(bad))
	}
	re, err := regexp.Compile(expanded)
	if err != nil {
		return nil, fmt.Errorf("firewall: failregex is not RE2 syntax: %w", err)
	}
	if re.SubexpIndex("addr") < 0 {
		return nil, errors.New("firewall: failregex without <ADDR>")
	}
	return re, nil
}

// matches reports whether one of the jail's filters matches line (a line
// of the log without its newline) after its time stamp, with the line's
// own address where the filter puts its <ADDR>.
func (j *Jail) matches(line []byte, addr netip.Addr) bool {
	_, rest, ok := strings.Cut(string(line), " ")
	if !ok {
		return false
	}
	rest = " " + rest // fail2ban cuts the date and keeps what follows it
	for _, re := range j.Filter {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			continue
		}
		a, err := netip.ParseAddr(m[re.SubexpIndex("addr")])
		if err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// FromDump reads the receiving jails (Receiving) out of 'fail2ban-client
// -d' (f2b.Client.Dump): those the configuration enables, each with its
// failregex, bantime and ignoreip, names in ignoreip resolved with
// resolve. A jail's setting the fast path cannot follow is an error that
// names the jail: the fast path must not ban what the jail would not.
func FromDump(dump []f2b.Setting, resolve func(string) ([]netip.Addr, error)) ([]Jail, error) {
	var out []Jail
	for _, r := range Receiving {
		j := Jail{Name: r.Jail, Kind: r.Kind, BanTime: 10 * time.Minute}
		enabled := false
		for _, s := range dump {
			if s.Jail != r.Jail {
				continue
			}
			enabled = true
			var err error
			switch s.Key {
			case "addfailregex":
				for _, v := range s.Values {
					re, cerr := CompileFailregex(v)
					if cerr != nil {
						err = cerr
						break
					}
					j.Filter = append(j.Filter, re)
				}
			case "bantime":
				if len(s.Values) == 1 {
					var bt int64
					if bt, err = ParseDuration(s.Values[0]); err == nil {
						j.BanTime = time.Duration(max(bt, 0)) * time.Second
					}
				}
			case "addlogpath":
				if len(s.Values) > 0 {
					j.LogPaths = append(j.LogPaths, s.Values[0])
				}
			case "addignoreip":
				for _, v := range s.Values {
					ps, perr := IgnorePrefixes(v, resolve)
					if perr != nil {
						err = perr
						break
					}
					j.Ignore = append(j.Ignore, ps...)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("firewall: jail %s: %w", r.Jail, err)
			}
		}
		if !enabled {
			continue
		}
		if len(j.Filter) == 0 {
			return nil, fmt.Errorf("firewall: jail %s has no failregex", r.Jail)
		}
		out = append(out, j)
	}
	return out, nil
}

// IgnorePrefixes reads one entry of ignoreip: an address, a prefix
// (fail2ban takes 127.0.0.1/8 as 127.0.0.0/8), or a host name, which
// resolve turns into its addresses. An entry it cannot take is an error:
// an admin's address left out would be banned.
func IgnorePrefixes(s string, resolve func(string) ([]netip.Addr, error)) ([]netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return []netip.Prefix{p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return []netip.Prefix{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}, nil
	}
	if !record.ValidName(s) || resolve == nil {
		return nil, fmt.Errorf("ignoreip entry %q is neither an address nor a host name", record.Printable(s))
	}
	addrs, err := resolve(s)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("ignoreip entry %s does not resolve", s)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// durationUnits are fail2ban's time abbreviations (helpers.str2seconds),
// longest first so that "mo" is not read as "m".
var durationUnits = []struct {
	names []string
	secs  int64
}{
	{[]string{"years", "year", "yy", "y"}, 365 * 86400},
	{[]string{"months", "month", "mo"}, 30 * 86400},
	{[]string{"weeks", "week", "ww", "w"}, 7 * 86400},
	{[]string{"days", "day", "dd", "d"}, 86400},
	{[]string{"hours", "hour", "hh", "h"}, 3600},
	{[]string{"minutes", "minute", "mm", "m"}, 60},
	{[]string{"seconds", "second", "ss", "s"}, 1},
}

// ParseDuration reads a fail2ban time as a jail's bantime is written: an
// integer of seconds ("600", "-1"), or a sum of numbers with units
// ("1h", "1d 12h", "90m"). It returns seconds; a negative result is a
// permanent ban.
func ParseDuration(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return 0, errors.New("time too long")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	var total int64
	rest := strings.ReplaceAll(s, " ", "")
	if rest == "" {
		return 0, errors.New("empty time")
	}
	neg := false
	if rest[0] == '-' {
		neg, rest = true, rest[1:]
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, fmt.Errorf("time %q: a number expected", record.Printable(s))
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		rest = rest[i:]
		unit := int64(0)
		for _, u := range durationUnits {
			for _, name := range u.names {
				if strings.HasPrefix(rest, name) {
					unit, rest = u.secs, rest[len(name):]
					break
				}
			}
			if unit != 0 {
				break
			}
		}
		if unit == 0 {
			unit = 1 // a bare number in a sum: seconds
		}
		total += n * unit
		if total > record.MaxBanTime {
			return 0, fmt.Errorf("time %q: too long", record.Printable(s))
		}
	}
	if neg {
		total = -total
	}
	return total, nil
}
