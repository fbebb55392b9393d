package record

import "testing"

// TestPeerID: the spellings of one host are one peer.
func TestPeerID(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"web1", "web1"},
		{"WEB1", "web1"},
		{"web1.example.com", "web1"},
		{"Web1.Example.Com.", "web1"},
		{"web-1_a", "web-1_a"},
		{".hidden", ".hidden"},
		{"..x", "..x"},
	} {
		if got := PeerID(tt.in); got != tt.want {
			t.Errorf("PeerID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
