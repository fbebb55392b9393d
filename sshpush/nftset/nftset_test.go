package nftset_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/nftset"
	"github.com/banpush/banpush/sshpush/testkit/netns"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// open makes a network namespace of the test's own, with the nft CLI to
// look into it, and opens the set there.
func open(t testing.TB) (*nftset.Set, *netns.NS) {
	t.Helper()
	testenv.Need(t, testenv.Command("nft", "nftables"))
	ns := netns.New(t)
	s, err := nftset.Open(ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ns
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// nftElements lists the elements of set as the nft CLI shows them: each
// address with its "timeout ... expires ..." text, "" when permanent.
func nftElements(t *testing.T, ns *netns.NS, set string) map[string]string {
	t.Helper()
	out := string(ns.Run(t, "nft", "list", "set", "inet", nftset.Table, set))
	_, body, ok := strings.Cut(out, "elements = {")
	got := map[string]string{}
	if !ok {
		return got
	}
	body, _, _ = strings.Cut(body, "}")
	for _, e := range strings.Split(body, ",") {
		f := strings.Fields(e)
		if len(f) > 0 {
			got[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return got
}

// TestSetLifecycle: Ensure makes the table beside another and is
// idempotent; Add puts addresses of both families into the kernel with
// their timeouts, as the nft CLI shows them; a replaced address gets its
// new timeout; Delete lifts them; Remove takes the table and nothing else.
func TestSetLifecycle(t *testing.T) {
	s, ns := open(t)
	admin := filepath.Join(t.TempDir(), "admin.nft")
	if err := os.WriteFile(admin, []byte("table inet admin {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", admin)
	if ok, err := s.Present(); err != nil || ok {
		t.Fatalf("Present before Ensure = %v, %v; want false", ok, err)
	}
	if _, err := s.List(); err != nftset.ErrNoTable {
		t.Fatalf("List before Ensure: %v, want ErrNoTable", err)
	}
	for range 2 {
		if err := s.Ensure(); err != nil {
			t.Fatal(err)
		}
	}
	table := string(ns.Run(t, "nft", "list", "table", "inet", nftset.Table))
	for _, want := range []string{
		"set " + nftset.SetV4 + " {\n\t\ttype ipv4_addr\n\t\tflags timeout",
		"set " + nftset.SetV6 + " {\n\t\ttype ipv6_addr\n\t\tflags timeout",
		"type filter hook input priority filter - 10; policy accept;",
		"type filter hook forward priority filter - 10; policy accept;",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("nft list table lacks %q:\n%s", want, table)
		}
	}
	// Two rules a chain, however often Ensure ran.
	if n := strings.Count(table, "drop"); n != 4 {
		t.Errorf("%d drop rules, want 4:\n%s", n, table)
	}
	if ok, err := s.Present(); err != nil || !ok {
		t.Fatalf("Present after Ensure = %v, %v; want true", ok, err)
	}

	add := []nftset.Element{
		{Addr: addr("203.0.113.7"), Timeout: time.Hour},
		{Addr: addr("198.51.100.9"), Timeout: 0},
		{Addr: addr("2001:db8::7"), Timeout: 10 * time.Minute},
		{Addr: addr("::ffff:203.0.113.8"), Timeout: time.Minute}, // mapped: added as IPv4
	}
	if err := s.Add(add, nil); err != nil {
		t.Fatal(err)
	}
	v4, v6 := nftElements(t, ns, nftset.SetV4), nftElements(t, ns, nftset.SetV6)
	for _, c := range []struct {
		set  map[string]string
		addr string
		want string // a regexp of the element's text
	}{
		{v4, "203.0.113.7", `^timeout 1h expires (59m5\d|1h)`},
		{v4, "198.51.100.9", `^$`},
		{v4, "203.0.113.8", `^timeout 1m expires \d+s`},
		{v6, "2001:db8::7", `^timeout 10m expires (9m5\d|10m)`},
	} {
		got, ok := c.set[c.addr]
		if !ok || !regexp.MustCompile(c.want).MatchString(got) {
			t.Errorf("nft shows %s as %q (present %v), want %s", c.addr, got, ok, c.want)
		}
	}
	ms, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Errorf("List: %d members, want 4: %v", len(ms), ms)
	}
	for _, m := range ms {
		if m.Addr == addr("198.51.100.9") != m.Permanent() || !m.Permanent() && (m.Expires <= 0 || m.Expires > m.Timeout) {
			t.Errorf("List: %+v", m)
		}
	}

	// Replacing sets the new timeout (a plain add keeps the old one on
	// some kernels and not on others), also for an address to replace that
	// is not there.
	if err := s.Add([]nftset.Element{{Addr: addr("203.0.113.7"), Timeout: 2 * time.Hour}, {Addr: addr("203.0.113.99"), Timeout: time.Hour}},
		[]netip.Addr{addr("203.0.113.7"), addr("203.0.113.99")}); err != nil {
		t.Fatal(err)
	}
	v4 = nftElements(t, ns, nftset.SetV4)
	if got := v4["203.0.113.7"]; !strings.HasPrefix(got, "timeout 2h ") {
		t.Errorf("after a replace: %q, want timeout 2h", got)
	}
	if _, ok := v4["203.0.113.99"]; !ok {
		t.Errorf("an address to replace that was not there is not added: %v", v4)
	}

	if err := s.Delete([]netip.Addr{addr("203.0.113.7"), addr("2001:db8::7"), addr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	v4, v6 = nftElements(t, ns, nftset.SetV4), nftElements(t, ns, nftset.SetV6)
	if _, ok := v4["203.0.113.7"]; ok || len(v6) != 0 || len(v4) != 3 {
		t.Errorf("after Delete: v4 %v, v6 %v", v4, v6)
	}

	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove of a missing table: %v", err)
	}
	all := string(ns.Run(t, "nft", "list", "ruleset"))
	if strings.Contains(all, "table inet "+nftset.Table) || !strings.Contains(all, "table inet admin") {
		t.Errorf("after Remove, the ruleset is:\n%s", all)
	}
}

// TestDrop: a packet from a member is dropped, on a veth between two
// namespaces of the test's own; lifting the address lets it through again.
func TestDrop(t *testing.T) {
	s, host := open(t)
	peer := netns.New(t)
	netns.Link(t, host, peer, netip.MustParsePrefix("10.87.0.1/24"), netip.MustParsePrefix("10.87.0.2/24"))
	var ln net.Listener
	if err := host.Do(func() (err error) { ln, err = net.Listen("tcp", "10.87.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		return peer.Do(func() error {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("before the ban: %v", err)
	}
	if err := s.Add([]nftset.Element{{Addr: addr("10.87.0.2"), Timeout: time.Hour}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err == nil {
		t.Fatal("a member connected")
	}
	out := string(host.Run(t, "nft", "list", "chain", "inet", nftset.Table, nftset.ChainInput))
	if !regexp.MustCompile(`@` + nftset.SetV4 + ` counter packets [1-9]\d* bytes \d+ drop`).MatchString(out) {
		t.Errorf("the input chain counted no drop:\n%s", out)
	}
	if err := s.Delete([]netip.Addr{addr("10.87.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("after the unban: %v", err)
	}
}

// TestTimeoutRunsOut: the kernel drops a member when its timeout runs out,
// with nothing of banpush's running.
func TestTimeoutRunsOut(t *testing.T) {
	s, ns := open(t)
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]nftset.Element{{Addr: addr("203.0.113.7"), Timeout: 300 * time.Millisecond}, {Addr: addr("203.0.113.8"), Timeout: time.Hour}}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v4 := nftElements(t, ns, nftset.SetV4)
		if _, ok := v4["203.0.113.7"]; !ok {
			if _, ok := v4["203.0.113.8"]; !ok {
				t.Fatalf("the member with an hour left went too: %v", v4)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the member with 300 ms is still there: %v", v4)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLarge: 20,000 addresses of both families go in one transaction and
// are all listed.
func TestLarge(t *testing.T) {
	s, _ := open(t)
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	els := elements(20000)
	if err := s.Add(els, nil); err != nil {
		t.Fatal(err)
	}
	ms, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(els) {
		t.Fatalf("%d members, want %d", len(ms), len(els))
	}
}

// elements returns n distinct addresses, half IPv4 and half IPv6, with
// timeouts of about an hour.
func elements(n int) []nftset.Element {
	out := make([]nftset.Element, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%2 == 1 {
			a = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))
		}
		out[i] = nftset.Element{Addr: a, Timeout: time.Hour + time.Duration(i)*time.Second}
	}
	return out
}
