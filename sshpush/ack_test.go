package sshpush

import (
	"testing"
)

// TestBanAckMustAccount: an answer that does not account for exactly the
// records sent is malformed, so that no sender moves its cursor on it.
func TestBanAckMustAccount(t *testing.T) {
	tests := []struct {
		name, answer string
		wantClass    Class
	}{
		{"exact", "banpush-v1 ok accepted=1 refused=1\n", ClassOK},
		{"limited", "banpush-v1 ok accepted=1 refused=1 limited=1 limited_from=2\n", ClassOK},
		{"too few", "banpush-v1 ok accepted=0 refused=0\n", ClassReceiverError},
		{"too many", "banpush-v1 ok accepted=2 refused=1\n", ClassReceiverError},
		{"limited past the batch", "banpush-v1 ok accepted=1 refused=1 limited=1 limited_from=3\n", ClassReceiverError},
		{"more limited than refused", "banpush-v1 ok accepted=0 refused=2 limited=3 limited_from=1\n", ClassReceiverError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, target := okServer(t, serverConfig{handler: func(string, []byte) reply { return reply{stdout: tt.answer} }})
			c := dial(t, target, Options{})
			_, err := c.Ban(t.Context(), []byte("203.0.113.1\n203.0.113.2\n"))
			if got := ClassOf(err); got != tt.wantClass {
				t.Errorf("got %s (%v), want %s", got, err, tt.wantClass)
			}
		})
	}
}
