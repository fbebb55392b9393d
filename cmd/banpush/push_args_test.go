package main

import "testing"

// TestParsePushArgs: the arguments of push in an actionban, as fail2ban
// has it (contrib's action with its <pushargs> in place), are read as push
// reads them.
func TestParsePushArgs(t *testing.T) {
	tests := []struct {
		name, ban   string
		ok, private bool
		jail        string
	}{
		{"contrib's action", `/usr/local/bin/banpush push  --jail "sshd" --time "<time>" --bantime "<bantime>" -- "<ip>"`, true, false, "sshd"},
		{"with pushargs", `/usr/bin/banpush push --allow-private --self h1 --jail "sshd" --time "<time>" --bantime "<bantime>" -- "<ip>"`, true, true, "sshd"},
		{"a tag outside quotes", `banpush push --allow-private -- <ip>`, true, true, ""},
		{"after --, an address", `banpush push -- --allow-private`, true, false, ""},
		{"another program", `/usr/bin/notbanpush push --allow-private -- "<ip>"`, false, false, ""},
		{"another command", `/usr/bin/banpush flush --allow-private`, false, false, ""},
		{"a flag push does not know", `/usr/bin/banpush push --allow-everything -- "<ip>"`, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parsePushArgs(tt.ban)
			if ok != tt.ok || c.AllowPrivate != tt.private || c.Jail != tt.jail {
				t.Errorf("got ok %v, --allow-private %v, --jail %q; want %v, %v, %q", ok, c.AllowPrivate, c.Jail, tt.ok, tt.private, tt.jail)
			}
		})
	}
}
