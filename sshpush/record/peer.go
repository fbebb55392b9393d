package record

import "strings"

// PeerID is what identifies a pushing peer to this receiver: its name
// (--peer, or the key ID of its certificate with --peer-from-cert) in
// lower case, up to its first dot. "web1", "WEB1" and "web1.example.com"
// are one peer: one report toward a quorum, one token bucket, one unban
// memory share and one set of session slots, however many keys or
// certificates of the host are authorized here, and however their names
// are spelled. Two hosts whose names share a first label ("db.paris",
// "db.london") are one peer too, which can delay a quorum but never
// make one: give every host a first label of its own. A name that starts
// with a dot is taken whole. Log lines keep the name as authorized.
func PeerID(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 {
		name = name[:i]
	}
	return strings.ToLower(name)
}
