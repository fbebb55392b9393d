package receive

// Every peer has its own share of each of the receiver's memories
// (LOG.quorum, LOG.unbans), so that one peer, however busy or hostile,
// cannot fill a memory the others need. A memory holds at most a fixed
// number of entries. While it has room, any peer adds. Once it is full, a
// peer with fewer entries than its fair share (the bound divided by the
// peers holding entries, itself counted) takes the place of the entry that
// expires first of the peer holding the most, which is then over its own
// share; a peer at or over its share is refused (as rate-limited: an
// honest sender keeps the record queued). So a peer is always sure of its
// share, whatever the others send, and may use the room they leave.

// fairShare decides whether peer may add an entry to a memory of at most
// limit entries that holds total, count[p] of them peer p's (peers with
// none are not in count): ok while the memory has room; once it is full,
// ok only for a peer under its fair share, with the peer whose entry it
// replaces.
func fairShare(count map[string]int, total, limit int, peer string) (victim string, ok bool) {
	if total < limit {
		return "", true
	}
	peers := len(count)
	if count[peer] == 0 {
		peers++
	}
	if count[peer] >= limit/peers {
		return "", false
	}
	most := 0
	for p, n := range count {
		if p != peer && (n > most || n == most && p < victim) {
			victim, most = p, n
		}
	}
	return victim, victim != ""
}
