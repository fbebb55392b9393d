package main

import (
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
	"github.com/banpush/banpush/sshpush/record"
)

// ReceiveArgs are the arguments of 'banpush receive': what an
// authorized_keys line says about one pushing peer. receive parses them
// (kong); authorize checks them the same way and renders them (argv) into
// the line's command=. One type for both, so that renaming a flag fails
// TestReceiveArgsRoundTrip and testdata/receive_compat.txtar instead of
// every line already installed.
type ReceiveArgs struct {
	Peer         string        `help:"Name of the pushing peer this key belongs to (its name in the pushing side's inventory is a good choice); trusted, since it comes from authorized_keys. Required unless --peer-from-cert." placeholder:"NAME"`
	PeerFromCert bool          `help:"Name the pushing peer after the key ID of the user certificate it logged in with, as sshd verified it for a cert-authority line (needs ExposeAuthInfo)." hidden:""`
	Log          string        `help:"Absolute path of the log the local fail2ban watches." required:"" placeholder:"PATH"`
	Ignore       []string      `help:"Never accept addresses in this CIDR (or single address); repeat or separate with commas." placeholder:"CIDR"`
	MaxBurst     int           `help:"Token bucket size: how many addresses this peer may add at once." default:"${max_burst}" placeholder:"N"`
	MaxPerMinute int           `help:"Token bucket refill: how many addresses per minute this peer may add after a burst." default:"${max_per_minute}" placeholder:"N"`
	AllowPrivate bool          `help:"Accept private (RFC 1918, RFC 4193) and CGNAT addresses."`
	Trust        string        `help:"How far this peer is trusted: full (each address it sends is banned by the banpush jail) or quorum (its addresses are reports, banned by the banpush-quorum jail once --quorum distinct peers reported them within --quorum-window)." enum:"full,quorum" default:"full" placeholder:"LEVEL"`
	Quorum       int           `help:"With --trust quorum: how many distinct peers must have reported an address within the window for it to be banned." default:"${quorum_peers}" placeholder:"N"`
	QuorumWindow time.Duration `help:"With --trust quorum: how long a report counts; one report per address per peer per window." default:"${quorum_window}" placeholder:"DURATION"`
	AllowUnban   bool          `help:"Let this peer lift bans here ('banpush unban' on it): its unbans are written to the log for 'banpush apply-unbans'. Off by default: a compromised peer must not lift bans everywhere."`
	UnbanWindow  time.Duration `help:"For this long after an address is unbanned here, this peer's bans of it are refused as stale, so that a ban in flight does not put it straight back; 0s: no window." default:"${unban_window}" placeholder:"DURATION"`
}

// trustQuorum is the --trust of a peer whose addresses count toward a
// quorum; "full", the default, is not written into lines.
const trustQuorum = "quorum"

// receiveVars are the defaults the kong tags above refer to.
func receiveVars() map[string]string {
	return map[string]string{
		"max_burst":      strconv.Itoa(receive.DefaultMaxBurst),
		"max_per_minute": strconv.Itoa(receive.DefaultMaxPerMinute),
		"quorum_window":  receive.DefaultQuorumWindow.String(),
		"quorum_peers":   strconv.Itoa(receive.DefaultQuorumPeers),
		"unban_window":   receive.DefaultUnbanWindow.String(),
	}
}

// check validates the arguments into the receiver's configuration, with
// receive.Config.Check's rules (errors are *receive.ArgError; with
// --peer-from-cert the Config's Peer is left empty), and returns
// them in canonical form too: the log path cleaned, --ignore values as
// prefixes or bare addresses, as argv writes them.
func (a ReceiveArgs) check(now func() time.Time) (ReceiveArgs, receive.Config, error) {
	cfg := receive.Config{
		Peer:         a.Peer,
		LogPath:      a.Log,
		Policy:       record.Policy{AllowPrivate: a.AllowPrivate},
		MaxBurst:     a.MaxBurst,
		MaxPerMinute: a.MaxPerMinute,
		LockTimeout:  receive.DefaultLockTimeout,
		Now:          now,
		AllowUnban:   a.AllowUnban,
		UnbanWindow:  a.UnbanWindow,
	}
	if a.Trust == trustQuorum {
		cfg.Quorum, cfg.QuorumPeers = a.QuorumWindow, a.Quorum
	}
	switch {
	case a.PeerFromCert && a.Peer != "":
		return ReceiveArgs{}, receive.Config{}, &receive.ArgError{Flag: "--peer-from-cert", Rule: "given without --peer: the certificate names the peer"}
	case !a.PeerFromCert && a.Peer == "":
		return ReceiveArgs{}, receive.Config{}, &receive.ArgError{Flag: "--peer", Rule: "given (or --peer-from-cert, for a cert-authority line)"}
	}
	canon := a
	canon.Ignore = nil
	for _, s := range a.Ignore {
		p, err := record.ParsePrefix(s)
		if err != nil {
			return ReceiveArgs{}, receive.Config{}, &receive.ArgError{Flag: "--ignore", Value: s, Rule: "a CIDR prefix or an address"}
		}
		cfg.Policy.Ignore = append(cfg.Policy.Ignore, p)
		canon.Ignore = append(canon.Ignore, prefixString(p))
	}
	checked := cfg
	if a.PeerFromCert {
		// Receive names the peer from its certificate before it reads a
		// byte; every other setting is checked now, with a stand-in name.
		checked.Peer = "certificate"
	}
	if err := checked.Check(); err != nil {
		return ReceiveArgs{}, receive.Config{}, err
	}
	canon.Log = filepath.Clean(a.Log)
	return canon, cfg, nil
}

// argv renders the arguments, starting with the receive command, so that
// they parse back to the same ReceiveArgs. The limits are always written:
// a line keeps the limits it was written with when a later version changes
// the defaults.
func (a ReceiveArgs) argv() []string {
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
	if a.Trust == trustQuorum {
		args = append(args, "--trust", trustQuorum, "--quorum", strconv.Itoa(a.Quorum), "--quorum-window", a.QuorumWindow.String())
	}
	if a.AllowUnban {
		args = append(args, "--allow-unban")
	}
	if a.UnbanWindow != receive.DefaultUnbanWindow {
		args = append(args, "--unban-window", a.UnbanWindow.String())
	}
	return args
}

// prefixString writes a single-address prefix as the bare address.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// parseReceiveArgs parses the arguments of a forced command after the
// program ("receive", ...) as 'banpush receive' would, and checks them: for
// doctor, which reads them out of authorized_keys.
func parseReceiveArgs(argv []string) (args ReceiveArgs, err error) {
	var cli CLI
	quiet := &Env{Stdout: io.Discard, Stderr: io.Discard}
	parser := newParser(&cli, quiet)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); !ok {
				panic(r)
			}
			err = errors.New("they are not the arguments of 'banpush receive'")
		}
	}()
	kctx, err := parser.Parse(argv)
	if err != nil {
		return ReceiveArgs{}, err
	}
	if kctx.Command() != "receive" {
		return ReceiveArgs{}, errors.New("the command is not 'receive'")
	}
	if _, _, err := cli.Receive.check(time.Now); err != nil {
		return ReceiveArgs{}, err
	}
	return cli.Receive.ReceiveArgs, nil
}
