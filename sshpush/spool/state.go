package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/sys/unix"
)

// State is what the sender remembers about a peer between runs, for
// `banpush status`. Counters only grow.
type State struct {
	LastSuccess        time.Time `json:"last_success,omitzero"`
	LastFailure        time.Time `json:"last_failure,omitzero"`
	LastFailureClass   string    `json:"last_failure_class,omitempty"`   // e.g. "unreachable", "auth", "hostkey"
	LastFailureMessage string    `json:"last_failure_message,omitempty"` // a fixed or sanitised text
	Delivered          int64     `json:"delivered"`                      // records acknowledged by the peer
	Dropped            int64     `json:"dropped"`                        // records expired before delivery
	Refused            int64     `json:"refused"`                        // records the peer refused
	Unbanned           int64     `json:"unbanned"`                       // unbans acknowledged by the peer
	Cancelled          int64     `json:"cancelled"`                      // bans not delivered: an unban of their address followed
	Reported           int64     `json:"reported"`                       // failure reports acknowledged by the peer
}

// maxStateSize bounds what LoadState reads.
const maxStateSize = 64 << 10

// LoadState returns peer's delivery state, the zero State if it has none.
// A state file that does not parse is removed and reported with a
// *CorruptFileError, returned with the zero State.
func (s *Spool) LoadState(peer string) (State, error) {
	if err := checkPeer(peer); err != nil {
		return State{}, err
	}
	path := s.path(peerDir, peer+".json")
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return State{}, fmt.Errorf("spool: %w", err)
	}
	var st State
	if len(b) > maxStateSize || json.Unmarshal(b, &st) != nil {
		if err := os.Remove(path); err != nil {
			return State{}, fmt.Errorf("spool: %w", err)
		}
		return State{}, &CorruptFileError{Path: peerDir + "/" + peer + ".json", Reason: "unreadable state, removed"}
	}
	return st, nil
}

// SaveState replaces peer's delivery state atomically, without syncing it:
// the state is what 'banpush status' and the metrics show, and delivery does
// not depend on it. A machine that crashes may lose the last save, or leave
// a damaged file, which LoadState removes and reports; the queue itself is
// the journal and the cursors.
func (s *Spool) SaveState(peer string, st State) error {
	if err := checkPeer(peer); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	b = append(b, '\n')
	if err := fsutil.ReplaceFile(s.path(peerDir, peer+".json"), b, 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
