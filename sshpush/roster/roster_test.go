package roster

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/banpush/banpush/inventory"
)

// writeInventory writes an inventory and returns its path.
func writeInventory(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func noAddrs() []netip.Addr { return nil }

const peers = `Host h1
  HostName 192.0.2.1
Host h2
  HostName 192.0.2.2
  IdentityAgent $AGENT
Host h3
  HostName 192.0.2.3
  ProxyJump bastion
Host h4
  HostName 192.0.2.4
`

// TestLoad: every peer but this host, resolved in the inventory's order;
// a peer that cannot be resolved is set aside with its error; names are
// checked.
func TestLoad(t *testing.T) {
	path := writeInventory(t, peers)
	env := map[string]string{"AGENT": "/run/agent.sock", "SSH_AUTH_SOCK": "/run/auth.sock"}
	cfg := Config{Inventory: path, Self: "h4", Getenv: func(k string) string { return env[k] }, Addrs: noAddrs}
	ro, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ro.Peers {
		names = append(names, p.Name)
	}
	if want := []string{"h1", "h2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("peers %v, want %v", names, want)
	}
	if want := []string{"h1", "h2", "h3"}; !reflect.DeepEqual(ro.Live, want) {
		t.Errorf("live %v, want %v", ro.Live, want)
	}
	if ro.Bad["h3"] == nil || len(ro.Bad) != 1 {
		t.Errorf("bad %v, want h3's ProxyJump alone", ro.Bad)
	}
	if want := []Self{{"h4", "named by --self (BANPUSH_SELF)"}}; !reflect.DeepEqual(ro.Self, want) {
		t.Errorf("self %v, want %v", ro.Self, want)
	}
	if len(ro.Peers) == 2 {
		if got := ro.Peers[0].Target.IdentityAgent; got != "/run/auth.sock" {
			t.Errorf("h1's agent %q, want SSH_AUTH_SOCK's", got)
		}
		if got := ro.Peers[1].Target.IdentityAgent; got != "/run/agent.sock" {
			t.Errorf("h2's agent %q, want $AGENT's", got)
		}
	}
	var self *SelfError
	if err := ro.NotSelf([]string{"h1", "h4"}); !errors.As(err, &self) || self.Self.Name != "h4" {
		t.Errorf("NotSelf(h1, h4): %v, want a SelfError for h4", err)
	}
	if err := ro.NotSelf([]string{"h1"}); err != nil {
		t.Errorf("NotSelf(h1): %v", err)
	}

	// Names: only those, this host too (a caller that delivers refuses it).
	ro, err = Load(cfg, "h2", "h4")
	if err != nil {
		t.Fatal(err)
	}
	if len(ro.Peers) != 2 || ro.Peers[0].Name != "h2" || ro.Peers[1].Name != "h4" {
		t.Errorf("named h2 h4: peers %+v", ro.Peers)
	}
	var unknown *UnknownPeerError
	if _, err := Load(cfg, "h1", "nosuch"); !errors.As(err, &unknown) || unknown.Name != "nosuch" {
		t.Errorf("an unknown name: %v, want an UnknownPeerError", err)
	}
}

// TestLoadThisHostAlone: an inventory of this host alone has no peers and
// an empty, not an unknown, list of live peers: the spool may be
// compacted.
func TestLoadThisHostAlone(t *testing.T) {
	path := writeInventory(t, "Host me\n  HostName 192.0.2.9\n")
	ro, err := Load(Config{Inventory: path, Getenv: os.Getenv,
		Addrs: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.9")} }})
	if err != nil {
		t.Fatal(err)
	}
	if ro.Live == nil || len(ro.Live) != 0 || len(ro.Peers) != 0 {
		t.Errorf("live %#v, peers %v; want an empty list and none", ro.Live, ro.Peers)
	}
}

// TestLoadInventoryErrors: a missing or invalid inventory is an
// InventoryError naming its path.
func TestLoadInventoryErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "peers")
	var ie *InventoryError
	_, err := Load(Config{Inventory: missing, Getenv: os.Getenv})
	if !errors.As(err, &ie) || ie.Path != missing || !errors.Is(err, inventory.ErrNotExist) {
		t.Errorf("missing: %v, want an InventoryError wrapping ErrNotExist", err)
	}
	bad := writeInventory(t, "Match all\n")
	_, err = Load(Config{Inventory: bad, Getenv: os.Getenv})
	if !errors.As(err, &ie) || ie.Path != bad || errors.Is(err, inventory.ErrNotExist) {
		t.Errorf("invalid: %v, want an InventoryError", err)
	}
}

// TestSelfNote: the note names the peers taken as this host, or says that
// --self named none.
func TestSelfNote(t *testing.T) {
	if got := SelfNote(nil, "", "peers"); got != "" {
		t.Errorf("none found, none named: %q", got)
	}
	if got, want := SelfNote(nil, "web9", "/etc/banpush/peers"), "no peer is this host: --self web9 names no peer of /etc/banpush/peers, and no peer's HostName is an address of this host"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := SelfNote([]Self{{"h1", "why"}}, "", "peers"), "this host is h1 (why): nothing is sent to it"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
