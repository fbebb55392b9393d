package inventory

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that whatever Parse accepts survives a round trip and
// edits: the bytes come back unchanged, parsing them again gives the same
// peers and the same resolved HostName, Port and User, and Add and Remove
// keep every other peer and leave a file Parse accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		handWritten,
		"Host a\n  HostName x\n\nHost *\n  User u\n",
		"Host a\r\n  HostName x\r\n",
		"User u\nHost a # c\n\tPort=2\n#x\n\n# y\nHost b\n  IdentityFile \"/a b\"\n",
		"Host a\n  HostName %h.example\n  Port 22 # c\n",
		"Host = a\n  hostname \"x\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := parse("peers", data)
		if err != nil {
			return
		}
		if !bytes.Equal(inv.Bytes(), data) {
			t.Fatalf("Bytes() = %q, want the input %q", inv.Bytes(), data)
		}
		again, err := parse("peers", inv.Bytes())
		if err != nil {
			t.Fatalf("parse of Bytes(): %v", err)
		}
		peers := inv.Peers()
		if !reflect.DeepEqual(again.Peers(), peers) {
			t.Fatalf("peers %v, then %v", peers, again.Peers())
		}
		for _, p := range peers {
			a, errA := inv.Resolve(p.Name, testLocal)
			b, errB := again.Resolve(p.Name, testLocal)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("Resolve(%s): %v, then %v", p.Name, errA, errB)
			}
			if errA == nil && (a.HostName != b.HostName || a.Port != b.Port || a.User != b.User) {
				t.Fatalf("Resolve(%s): %+v, then %+v", p.Name, a, b)
			}
		}

		// Add keeps the other peers and their lines.
		err = inv.Add(PeerSpec{Name: "fuzz-new", HostName: "192.0.2.1", Port: 2022, User: "u", IdentityFile: "~/.ssh/k"})
		if err != nil {
			if dup := inv.blockOfFold("fuzz-new"); dup {
				return
			}
			t.Fatalf("Add: %v", err)
		}
		if got, want := names(inv.Peers()), append(names(peers), "fuzz-new"); !sameSet(got, want) {
			t.Fatalf("after Add: peers %v, want %v", got, want)
		}
		if !keepsLines(data, inv.Bytes()) {
			t.Fatalf("Add lost a line:\n%q\n->\n%q", data, inv.Bytes())
		}
		// Remove drops exactly one peer.
		if len(peers) == 0 {
			return
		}
		before := inv.Bytes()
		if err := inv.Remove(peers[0].Name); err != nil {
			t.Fatalf("Remove(%s): %v", peers[0].Name, err)
		}
		if got, want := names(inv.Peers()), append(names(peers[1:]), "fuzz-new"); !sameSet(got, want) {
			t.Fatalf("after Remove: peers %v, want %v", got, want)
		}
		if !keepsLines(inv.Bytes(), before) {
			t.Fatalf("Remove added a line:\n%q\n->\n%q", before, inv.Bytes())
		}
	})
}

func (inv *Inventory) blockOfFold(name string) bool {
	for _, p := range inv.Peers() {
		if strings.EqualFold(p.Name, name) {
			return true
		}
	}
	return false
}

func names(ps []Peer) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return n
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

// keepsLines reports whether every line of a appears in b, in order.
// A last line without a line end may gain one.
func keepsLines(a, b []byte) bool {
	bl := strings.SplitAfter(string(b), "\n")
	for _, l := range strings.SplitAfter(string(a), "\n") {
		if l == "" {
			continue
		}
		i := 0
		for i < len(bl) && bl[i] != l && bl[i] != l+"\n" && bl[i] != l+"\r\n" {
			i++
		}
		if i == len(bl) {
			return false
		}
		bl = bl[i+1:]
	}
	return true
}
