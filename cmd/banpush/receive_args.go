package main

import (
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/receive"
)

// ReceiveFlags are the flags of 'banpush authorize' that say what the
// receiver may take from the peer: the receiver's arguments
// (receive.Args), which authorize checks, renders into the line's
// command= (receive.Args.Argv) and 'banpush receive' parses back
// (receive.ParseArgs). TestReceiveFlagsRoundTrip holds the three together.
type ReceiveFlags struct {
	Peer          string        `help:"Name of the pushing peer this key belongs to (its name in the pushing side's inventory is a good choice); trusted, since it comes from authorized_keys. Required unless --peer-from-cert." placeholder:"NAME"`
	PeerFromCert  bool          `help:"Name the pushing peer after the key ID of the user certificate it logged in with, as sshd verified it for a cert-authority line (needs ExposeAuthInfo)." hidden:""`
	Log           string        `help:"Absolute path of the log the local fail2ban watches." required:"" placeholder:"PATH"`
	Ignore        []string      `help:"Never accept addresses in this CIDR (or single address); repeat or separate with commas." placeholder:"CIDR"`
	MaxBurst      int           `help:"Token bucket size: how many addresses this peer may add at once." default:"${max_burst}" placeholder:"N"`
	MaxPerMinute  int           `help:"Token bucket refill: how many addresses per minute this peer may add after a burst." default:"${max_per_minute}" placeholder:"N"`
	AllowPrivate  bool          `help:"Accept private (RFC 1918, RFC 4193) and CGNAT addresses."`
	Trust         string        `help:"How far this peer is trusted: full (each address it sends is banned by the banpush jail) or quorum (its addresses are reports, banned by the banpush-quorum jail once --quorum distinct peers reported them within --quorum-window)." enum:"full,quorum" default:"full" placeholder:"LEVEL"`
	Quorum        int           `help:"With --trust quorum: how many distinct peers must have reported an address within the window for it to be banned." default:"${quorum_peers}" placeholder:"N"`
	QuorumWindow  time.Duration `help:"With --trust quorum: how long a report counts; one report per address per peer per window." default:"${quorum_window}" placeholder:"DURATION"`
	AllowUnban    bool          `help:"Let this peer lift bans here ('banpush unban' on it): its unbans are written to the log for 'banpush apply-unbans'. Off by default: a compromised peer must not lift bans everywhere."`
	UnbanWindow   time.Duration `help:"For this long after an address is unbanned here, this peer's bans of it are refused as stale, so that a ban in flight does not put it straight back; 0s: no window." default:"${unban_window}" placeholder:"DURATION"`
	Fleet         bool          `help:"Count the failures this peer reports ('banpush report-failures' on it) with the fleet's: an address that fails --fleet-failures times on at least --fleet-hosts hosts within --fleet-window gets a fleet line, which the banpush-fleet jail bans on. Off by default."`
	FleetFailures int           `help:"With --fleet: failures over all hosts that make a fleet ban (default ${fleet_failures}); one host counts for at most this divided by --fleet-hosts, rounded up. Implies --fleet." placeholder:"N"`
	FleetHosts    int           `help:"With --fleet: distinct hosts, this one included, that must have seen failures (default ${fleet_hosts}, at least 2). Implies --fleet." placeholder:"K"`
	FleetWindow   time.Duration `help:"With --fleet: how long a failure counts (default ${fleet_window}). Implies --fleet." placeholder:"DURATION"`
}

// args are the receiver's arguments the flags say.
func (f ReceiveFlags) args() receive.Args {
	return receive.Args{Peer: f.Peer, PeerFromCert: f.PeerFromCert, Log: f.Log, Ignore: f.Ignore,
		MaxBurst: f.MaxBurst, MaxPerMinute: f.MaxPerMinute, AllowPrivate: f.AllowPrivate, Trust: f.Trust,
		Quorum: f.Quorum, QuorumWindow: f.QuorumWindow, AllowUnban: f.AllowUnban, UnbanWindow: f.UnbanWindow,
		Fleet:         f.Fleet || f.FleetFailures != 0 || f.FleetHosts != 0 || f.FleetWindow != 0,
		FleetFailures: orDefault(f.FleetFailures, receive.DefaultFleetPolicy.Failures),
		FleetHosts:    orDefault(f.FleetHosts, receive.DefaultFleetPolicy.Hosts),
		FleetWindow:   orDefault(f.FleetWindow, receive.DefaultFleetPolicy.Window)}
}

// orDefault is v, or def where v was not given (zero): the --fleet-*
// flags have no kong default, so that giving one turns --fleet on.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// receiveVars are the defaults the kong tags above refer to.
func receiveVars() map[string]string {
	return map[string]string{
		"max_burst":      strconv.Itoa(receive.DefaultMaxBurst),
		"max_per_minute": strconv.Itoa(receive.DefaultMaxPerMinute),
		"quorum_window":  receive.DefaultQuorumWindow.String(),
		"quorum_peers":   strconv.Itoa(receive.DefaultQuorumPeers),
		"unban_window":   receive.DefaultUnbanWindow.String(),
		"fleet_failures": strconv.Itoa(receive.DefaultFleetPolicy.Failures),
		"fleet_hosts":    strconv.Itoa(receive.DefaultFleetPolicy.Hosts),
		"fleet_window":   receive.DefaultFleetPolicy.Window.String(),
	}
}
