package receive

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// Args are the arguments of 'banpush receive', what an authorized_keys
// line's forced command says about the peer whose key it holds. They are
// the contract between 'banpush authorize', which renders them into the
// line (Argv), and the receiver that sshd runs with them, which parses
// them back (ParseArgs); doctor and apply-unbans read installed lines with
// the same ParseArgs. One grammar: a flag renamed here fails
// TestArgsRoundTrip, not every line already installed.
type Args struct {
	Peer          string // the pushing peer's name; empty with PeerFromCert
	PeerFromCert  bool   // name the peer after its certificate's key ID (a cert-authority line)
	Log           string // absolute path of the received log
	Ignore        []string
	MaxBurst      int
	MaxPerMinute  int
	AllowPrivate  bool
	Trust         string // TrustFull or TrustQuorum
	Quorum        int
	QuorumWindow  time.Duration
	AllowUnban    bool
	UnbanWindow   time.Duration
	Fleet         bool // count this peer's failure reports (any --fleet-* flag turns it on)
	FleetFailures int
	FleetHosts    int
	FleetWindow   time.Duration
}

// The --trust levels.
const (
	TrustFull   = "full"
	TrustQuorum = "quorum"
)

// DefaultArgs are the arguments' defaults: what a flag left out means.
func DefaultArgs() Args {
	return Args{MaxBurst: DefaultMaxBurst, MaxPerMinute: DefaultMaxPerMinute, Trust: TrustFull,
		Quorum: DefaultQuorumPeers, QuorumWindow: DefaultQuorumWindow, UnbanWindow: DefaultUnbanWindow,
		FleetFailures: DefaultFleetPolicy.Failures, FleetHosts: DefaultFleetPolicy.Hosts, FleetWindow: DefaultFleetPolicy.Window}
}

// ArgFlags describes each flag of Args, for help texts.
var ArgFlags = []struct{ Name, Value, Help string }{
	{"--peer", "NAME", "name of the pushing peer this key belongs to; trusted, since it comes from authorized_keys (or --peer-from-cert)"},
	{"--peer-from-cert", "", "name the pushing peer after the key ID of the user certificate sshd verified for a cert-authority line (needs ExposeAuthInfo)"},
	{"--log", "PATH", "absolute path of the log the local fail2ban watches"},
	{"--ignore", "CIDR", "never accept addresses in this prefix (or address); repeated, or separated with commas"},
	{"--max-burst", "N", "token bucket size: how many addresses this peer may add at once (default " + strconv.Itoa(DefaultMaxBurst) + ")"},
	{"--max-per-minute", "N", "token bucket refill, per minute (default " + strconv.Itoa(DefaultMaxPerMinute) + ")"},
	{"--allow-private", "", "accept private (RFC 1918, RFC 4193) and CGNAT addresses"},
	{"--trust", "LEVEL", "full (each address is banned by the banpush jail) or quorum (a report, banned by the banpush-quorum jail once --quorum peers agree)"},
	{"--quorum", "N", "with --trust quorum: how many distinct peers must report an address within the window (default " + strconv.Itoa(DefaultQuorumPeers) + ")"},
	{"--quorum-window", "DURATION", "with --trust quorum: how long a report counts (default " + DefaultQuorumWindow.String() + ")"},
	{"--allow-unban", "", "let this peer lift bans here: its unbans are written for 'banpush apply-unbans'"},
	{"--unban-window", "DURATION", "after an unban here, refuse this peer's bans of the address as stale for this long (default " + DefaultUnbanWindow.String() + "; 0s: none)"},
	{"--fleet", "", "count the failures this peer reports ('banpush report-failures') with the fleet's: an address that fails --fleet-failures times on --fleet-hosts hosts within --fleet-window gets a fleet line, which the banpush-fleet jail bans on"},
	{"--fleet-failures", "N", "with --fleet: failures, over all hosts, that make a fleet ban (default " + strconv.Itoa(DefaultFleetPolicy.Failures) + "; each host counts for at most N/K, rounded up)"},
	{"--fleet-hosts", "K", "with --fleet: distinct hosts, this one included, that must have seen failures (default " + strconv.Itoa(DefaultFleetPolicy.Hosts) + ", at least 2)"},
	{"--fleet-window", "DURATION", "with --fleet: how long a failure counts (default " + DefaultFleetPolicy.Window.String() + ")"},
}

// ErrNotReceive is returned by ParseArgs for a command that is not
// banpush's receive.
var ErrNotReceive = errors.New("receive: the command is not 'receive'")

// ParseArgs parses the arguments of a forced command, from the word
// "receive" on, as 'banpush authorize' writes them (Argv) and as an
// administrator may write them by hand: flags in any order, each but
// --ignore at most once, a value as the next word or after "=". It checks
// every value (Check) and returns the arguments in canonical form. Its
// errors are *ArgError naming the flag, or ErrNotReceive.
func ParseArgs(argv []string) (Args, error) {
	if len(argv) == 0 || argv[0] != "receive" {
		return Args{}, ErrNotReceive
	}
	a := DefaultArgs()
	seen := map[string]bool{}
	for rest := argv[1:]; len(rest) > 0; {
		name, v, inline := strings.Cut(rest[0], "=")
		rest = rest[1:]
		spec, ok := argFlag(name)
		switch {
		case !ok:
			return Args{}, &ArgError{Flag: name, Rule: "one of receive's flags"}
		case seen[name] && name != "--ignore":
			return Args{}, &ArgError{Flag: name, Rule: "given once"}
		case spec.Value == "" && inline:
			return Args{}, &ArgError{Flag: name, Rule: "given without a value"}
		case spec.Value != "" && !inline:
			if len(rest) == 0 {
				return Args{}, &ArgError{Flag: name, Rule: "followed by a value"}
			}
			v, rest = rest[0], rest[1:]
		}
		seen[name] = true
		if err := a.set(name, v); err != nil {
			return Args{}, err
		}
	}
	if !seen["--log"] {
		return Args{}, &ArgError{Flag: "--log", Rule: "given"}
	}
	canon, _, err := a.Check(time.Now)
	return canon, err
}

// argFlag finds a flag's description.
func argFlag(name string) (struct{ Name, Value, Help string }, bool) {
	for _, f := range ArgFlags {
		if f.Name == name {
			return f, true
		}
	}
	return struct{ Name, Value, Help string }{}, false
}

// set sets the flag name to the value v.
func (a *Args) set(name, v string) error {
	bad := func(rule string) error { return &ArgError{Flag: name, Value: v, Rule: rule} }
	var err error
	switch name {
	case "--peer":
		a.Peer = v
	case "--peer-from-cert":
		a.PeerFromCert = true
	case "--log":
		a.Log = v
	case "--ignore":
		for _, p := range strings.Split(v, ",") {
			if p == "" {
				return bad("a CIDR prefix or an address, or a list of them")
			}
			a.Ignore = append(a.Ignore, p)
		}
	case "--max-burst":
		a.MaxBurst, err = plainDecimal(v)
	case "--max-per-minute":
		a.MaxPerMinute, err = plainDecimal(v)
	case "--quorum":
		a.Quorum, err = plainDecimal(v)
	case "--allow-private":
		a.AllowPrivate = true
	case "--allow-unban":
		a.AllowUnban = true
	case "--fleet":
		a.Fleet = true
	case "--fleet-failures":
		a.Fleet = true
		a.FleetFailures, err = plainDecimal(v)
	case "--fleet-hosts":
		a.Fleet = true
		a.FleetHosts, err = plainDecimal(v)
	case "--fleet-window":
		a.Fleet = true
		a.FleetWindow, err = time.ParseDuration(v)
	case "--trust":
		if v != TrustFull && v != TrustQuorum {
			return bad("full or quorum")
		}
		a.Trust = v
	case "--quorum-window":
		a.QuorumWindow, err = time.ParseDuration(v)
	case "--unban-window":
		a.UnbanWindow, err = time.ParseDuration(v)
	}
	if err != nil {
		return bad("a number, or a duration such as 1h30m")
	}
	return nil
}

// plainDecimal parses a non-negative decimal number without a sign or
// leading zeros, of at most 10 digits: enough for every bound Check allows
// (MaxMaxBurst is 10 digits), so that what Argv writes reads back.
func plainDecimal(s string) (int, error) {
	if s == "" || len(s) > 10 || len(s) > 1 && s[0] == '0' {
		return 0, errors.New("not a plain number")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a plain number")
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}

// Check validates the arguments into the receiver's Config, with Config's
// rules (with PeerFromCert, the Config's Peer is left empty: the
// certificate names it), and returns them in canonical form too: the log
// path cleaned, --ignore values as prefixes or bare addresses, as Argv
// writes them. Its errors are *ArgError.
func (a Args) Check(now func() time.Time) (Args, Config, error) {
	cfg := Config{
		Peer:         a.Peer,
		LogPath:      a.Log,
		Policy:       record.Policy{AllowPrivate: a.AllowPrivate},
		MaxBurst:     a.MaxBurst,
		MaxPerMinute: a.MaxPerMinute,
		LockTimeout:  DefaultLockTimeout,
		Now:          now,
		AllowUnban:   a.AllowUnban,
		UnbanWindow:  a.UnbanWindow,
	}
	if a.Trust == TrustQuorum {
		cfg.Quorum, cfg.QuorumPeers = a.QuorumWindow, a.Quorum
	}
	if a.Fleet {
		cfg.Fleet = FleetPolicy{Failures: a.FleetFailures, Hosts: a.FleetHosts, Window: a.FleetWindow}
	}
	switch {
	case a.PeerFromCert && a.Peer != "":
		return Args{}, Config{}, &ArgError{Flag: "--peer-from-cert", Rule: "given without --peer: the certificate names the peer"}
	case !a.PeerFromCert && a.Peer == "":
		return Args{}, Config{}, &ArgError{Flag: "--peer", Rule: "given (or --peer-from-cert, for a cert-authority line)"}
	case a.Trust != TrustFull && a.Trust != TrustQuorum:
		return Args{}, Config{}, &ArgError{Flag: "--trust", Value: a.Trust, Rule: "full or quorum"}
	}
	canon := a
	canon.Ignore = nil
	for _, s := range a.Ignore {
		p, err := record.ParsePrefix(s)
		if err != nil {
			return Args{}, Config{}, &ArgError{Flag: "--ignore", Value: s, Rule: "a CIDR prefix or an address"}
		}
		cfg.Policy.Ignore = append(cfg.Policy.Ignore, p)
		canon.Ignore = append(canon.Ignore, record.FormatPrefix(p))
	}
	checked := cfg
	if a.PeerFromCert {
		// The receiver names the peer from its certificate before it
		// reads a byte; every other setting is checked now, with a
		// stand-in name.
		checked.Peer = "certificate"
	}
	if err := checked.Check(); err != nil {
		return Args{}, Config{}, err
	}
	canon.Log = filepath.Clean(a.Log)
	return canon, cfg, nil
}

// Argv renders the arguments, from the word "receive" on, so that
// ParseArgs reads them back as they are. The limits are always written: a
// line keeps the limits it was written with when a later version changes
// the defaults.
func (a Args) Argv() []string {
	args := []string{"receive", "--peer", a.Peer}
	if a.PeerFromCert {
		args = []string{"receive", "--peer-from-cert"}
	}
	args = append(args, "--log", a.Log)
	for _, p := range a.Ignore {
		args = append(args, "--ignore", p)
	}
	args = append(args, "--max-burst", strconv.Itoa(a.MaxBurst), "--max-per-minute", strconv.Itoa(a.MaxPerMinute))
	if a.AllowPrivate {
		args = append(args, "--allow-private")
	}
	if a.Trust == TrustQuorum {
		args = append(args, "--trust", TrustQuorum, "--quorum", strconv.Itoa(a.Quorum), "--quorum-window", a.QuorumWindow.String())
	}
	if a.AllowUnban {
		args = append(args, "--allow-unban")
	}
	if a.UnbanWindow != DefaultUnbanWindow {
		args = append(args, "--unban-window", a.UnbanWindow.String())
	}
	if a.Fleet {
		args = append(args, "--fleet-failures", strconv.Itoa(a.FleetFailures), "--fleet-hosts", strconv.Itoa(a.FleetHosts), "--fleet-window", a.FleetWindow.String())
	}
	return args
}
