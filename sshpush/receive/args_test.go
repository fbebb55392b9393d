package receive

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestArgsRoundTrip: what Argv writes, ParseArgs reads back as it was; a
// flag renamed on one side only fails here, not in every authorized_keys
// line already installed.
func TestArgsRoundTrip(t *testing.T) {
	tests := []Args{
		{Peer: "web1", Log: "/var/log/banpush/received.log", MaxBurst: 2000, MaxPerMinute: 120, Trust: "full", Quorum: 2, QuorumWindow: time.Hour, UnbanWindow: DefaultUnbanWindow},
		{Peer: "db-2.example", Log: "/var/log/ban push/it's.log", Ignore: []string{"198.51.100.0/24", "2001:db8::1"},
			MaxBurst: 1, MaxPerMinute: 0, AllowPrivate: true, Trust: "full", Quorum: 2, QuorumWindow: time.Hour, UnbanWindow: DefaultUnbanWindow},
		{PeerFromCert: true, Log: "/var/log/banpush/received.log", Ignore: []string{"198.51.100.0/24"}, MaxBurst: 50, MaxPerMinute: 10, Trust: "full", Quorum: 2, QuorumWindow: time.Hour, UnbanWindow: DefaultUnbanWindow},
		{Peer: "web2", Log: "/var/log/banpush/received.log", MaxBurst: 20, MaxPerMinute: 5, Trust: "quorum", Quorum: 3, QuorumWindow: 90 * time.Minute, UnbanWindow: DefaultUnbanWindow},
		{Peer: "admin", Log: "/var/log/banpush/received.log", MaxBurst: 20, MaxPerMinute: 5, Trust: "full", Quorum: 2, QuorumWindow: time.Hour,
			AllowUnban: true, UnbanWindow: 0},
		{Peer: "web3", Log: "/var/log/banpush/received.log", MaxBurst: 20, MaxPerMinute: 5, Trust: "full", Quorum: 2, QuorumWindow: time.Hour,
			UnbanWindow: 90 * time.Second},
		{Peer: "h1", Log: "/l", MaxBurst: MaxMaxBurst, MaxPerMinute: MaxMaxPerMinute, Trust: "full", Quorum: 2, QuorumWindow: time.Hour,
			UnbanWindow: DefaultUnbanWindow},
		{Peer: "web4", Log: "/var/log/banpush/received.log", MaxBurst: 20, MaxPerMinute: 5, Trust: "full", Quorum: 2, QuorumWindow: time.Hour,
			UnbanWindow: DefaultUnbanWindow, Fleet: true, FleetFailures: 12, FleetHosts: 3, FleetWindow: 90 * time.Minute},
	}
	for i := range tests {
		if !tests[i].Fleet { // a line without --fleet keeps the defaults, unused
			p := DefaultFleetPolicy
			tests[i].FleetFailures, tests[i].FleetHosts, tests[i].FleetWindow = p.Failures, p.Hosts, p.Window
		}
	}
	for _, want := range tests {
		canon, _, err := want.Check(time.Now)
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if !reflect.DeepEqual(canon, want) {
			t.Fatalf("Check changed canonical arguments: %+v, want %+v", canon, want)
		}
		got, err := ParseArgs(want.Argv())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q parses to %+v (%v), want %+v", want.Argv(), got, err, want)
		}
	}
}

// TestParseArgs: the forms an administrator may write by hand, and what is
// refused, with the flag named.
func TestParseArgs(t *testing.T) {
	least := DefaultArgs()
	least.Peer, least.Log = "web1", "/l"
	tests := []struct {
		name    string
		args    []string
		want    *Args // nil: refused
		badFlag string
	}{
		{"the least", []string{"receive", "--peer", "web1", "--log", "/l"}, &least, ""},
		{"values after =, another order", []string{"receive", "--log=/l", "--max-burst=7", "--peer=web1", "--trust=full", "--unban-window=1h30m"},
			func() *Args { a := least; a.MaxBurst, a.UnbanWindow = 7, 90*time.Minute; return &a }(), ""},
		{"--ignore repeated and with commas", []string{"receive", "--peer", "web1", "--log", "/l", "--ignore", "10.0.0.0/8,192.0.2.1/32", "--ignore", "2001:db8::/32"},
			func() *Args { a := least; a.Ignore = []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}; return &a }(), ""},
		{"a log path to clean", []string{"receive", "--peer", "web1", "--log", "/var//log/../log/x.log"},
			func() *Args { a := least; a.Log = "/var/log/x.log"; return &a }(), ""},
		{"not receive", []string{"push", "--peer", "a", "--log", "/l"}, nil, ""},
		{"--ignore with an empty item", []string{"receive", "--peer", "a", "--log", "/l", "--ignore", "10.0.0.0/8,"}, nil, "--ignore"},
		{"a bad --ignore", []string{"receive", "--peer", "a", "--log", "/l", "--ignore", "nonsense"}, nil, "--ignore"},
		{"zero burst", []string{"receive", "--peer", "a", "--log", "/l", "--max-burst", "0"}, nil, "--max-burst"},
		{"no --log", []string{"receive", "--peer", "web1"}, nil, "--log"},
		{"a relative --log", []string{"receive", "--peer", "web1", "--log", "l"}, nil, "--log"},
		{"no --peer", []string{"receive", "--log", "/l"}, nil, "--peer"},
		{"--peer and --peer-from-cert", []string{"receive", "--peer", "a", "--peer-from-cert", "--log", "/l"}, nil, "--peer-from-cert"},
		{"a flag given twice", []string{"receive", "--peer", "a", "--peer", "b", "--log", "/l"}, nil, "--peer"},
		{"an unknown flag", []string{"receive", "--peer", "a", "--log", "/l", "--bogus"}, nil, "--bogus"},
		{"a positional argument", []string{"receive", "--peer", "a", "--log", "/l", "extra"}, nil, "extra"},
		{"a global", []string{"receive", "--spool", "/s", "--peer", "a", "--log", "/l"}, nil, "--spool"},
		{"a negative number", []string{"receive", "--peer", "a", "--log", "/l", "--max-burst", "-1"}, nil, "--max-burst"},
		{"a number with a leading zero", []string{"receive", "--peer", "a", "--log", "/l", "--max-burst", "010"}, nil, "--max-burst"},
		{"a hexadecimal number", []string{"receive", "--peer", "a", "--log", "/l", "--quorum", "0x10"}, nil, "--quorum"},
		{"a bad --trust", []string{"receive", "--peer", "a", "--log", "/l", "--trust", "some"}, nil, "--trust"},
		{"a bad duration", []string{"receive", "--peer", "a", "--log", "/l", "--quorum-window", "10"}, nil, "--quorum-window"},
		{"an unsafe peer name", []string{"receive", "--peer", "a;id", "--log", "/l"}, nil, "--peer"},
		{"a bool with a value", []string{"receive", "--peer", "a", "--log", "/l", "--allow-unban=true"}, nil, "--allow-unban"},
		{"a missing value", []string{"receive", "--log", "/l", "--peer"}, nil, "--peer"},
		{"--fleet alone: the defaults", []string{"receive", "--peer", "web1", "--log", "/l", "--fleet"},
			func() *Args { a := least; a.Fleet = true; return &a }(), ""},
		{"a --fleet-* flag turns the policy on", []string{"receive", "--peer", "web1", "--log", "/l", "--fleet-hosts=4"},
			func() *Args { a := least; a.Fleet, a.FleetHosts = true, 4; return &a }(), ""},
		{"one fleet host", []string{"receive", "--peer", "a", "--log", "/l", "--fleet-hosts", "1"}, nil, "--fleet-hosts"},
		{"fewer failures than hosts", []string{"receive", "--peer", "a", "--log", "/l", "--fleet-failures", "2"}, nil, "--fleet-failures"},
		{"too many fleet failures", []string{"receive", "--peer", "a", "--log", "/l", "--fleet-failures", "129"}, nil, "--fleet-failures"},
		{"a fleet window over a day", []string{"receive", "--peer", "a", "--log", "/l", "--fleet-window", "25h"}, nil, "--fleet-window"},
		{"a fleet window under a minute", []string{"receive", "--peer", "a", "--log", "/l", "--fleet-window", "59s"}, nil, "--fleet-window"},
		{"--fleet with a value", []string{"receive", "--peer", "a", "--log", "/l", "--fleet=yes"}, nil, "--fleet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args)
			if tt.want != nil {
				if err != nil || !reflect.DeepEqual(got, *tt.want) {
					t.Errorf("got %+v (%v), want %+v", got, err, *tt.want)
				}
				return
			}
			var ae *ArgError
			switch {
			case err == nil:
				t.Errorf("got %+v, want a refusal", got)
			case tt.badFlag == "" && !errors.Is(err, ErrNotReceive):
				t.Errorf("got %v, want ErrNotReceive", err)
			case tt.badFlag != "" && (!errors.As(err, &ae) || ae.Flag != tt.badFlag):
				t.Errorf("got %v, want an error naming %s", err, tt.badFlag)
			}
		})
	}
}

// FuzzParseArgs: the arguments of an authorized_keys line never panic the
// parser, and what it takes, Argv writes back to the same arguments.
func FuzzParseArgs(f *testing.F) {
	f.Add("receive\x00--peer\x00web1\x00--log\x00/var/log/banpush/received.log\x00--ignore\x0010.0.0.0/8,2001:db8::1")
	f.Add("receive\x00--peer-from-cert\x00--log=/l\x00--trust\x00quorum\x00--quorum\x003\x00--allow-unban\x00--unban-window\x000s")
	f.Add("receive\x00--peer\x00h1\x00--log\x00/l\x00--fleet-failures\x0012\x00--fleet-hosts=3\x00--fleet-window\x0030m")
	f.Fuzz(func(t *testing.T, joined string) {
		var argv []string
		start := 0
		for i := 0; i <= len(joined); i++ {
			if i == len(joined) || joined[i] == 0 {
				argv = append(argv, joined[start:i])
				start = i + 1
			}
		}
		a, err := ParseArgs(argv)
		if err != nil {
			return
		}
		b, err := ParseArgs(a.Argv())
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q parses to %+v, whose Argv %q parses to %+v (%v)", argv, a, a.Argv(), b, err)
		}
	})
}
