package firewall

import (
	"errors"
	"net/netip"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/nftset"
	"golang.org/x/sys/unix"
)

// Status is what status, metrics and doctor show of the fast path: its
// state file, whether a service holds its cursor, and how the kernel set
// compares with the state.
type Status struct {
	State      string `json:"state"`       // the cursor's path
	HasState   bool   `json:"has_state"`   // STATE.bans exists
	Running    bool   `json:"running"`     // a service holds the cursor's lock
	SetPresent bool   `json:"set_present"` // the table inet banpush exists
	Members    int    `json:"members"`     // addresses in the kernel set
	Bans       int    `json:"bans"`        // bans in force in the state file
	// Missing are bans of the state that the kernel set lacks; Extra,
	// members the state does not have. Both are 0 while a running
	// service keeps up (a few, for a moment, while it writes a batch).
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
}

// Lister lists the kernel set's members (nftset.Set does).
type Lister interface {
	List() ([]nftset.Member, error)
}

// Inspect reads the fast path's state at state (the cursor's path) and
// compares it with the kernel set. A missing state is HasState false,
// not an error; so is a missing table (SetPresent false). It only reads.
func Inspect(state string, k Lister, now time.Time) (Status, error) {
	st := Status{State: state}
	bans, err := LoadState(StatePath(state))
	if err != nil {
		return st, err
	}
	st.HasState = bans != nil
	for a, end := range bans {
		if !Live(end, now) {
			delete(bans, a)
		}
	}
	st.Bans = len(bans)
	st.Running = locked(state + ".lock")
	members, err := k.List()
	switch {
	case errors.Is(err, nftset.ErrNoTable):
		st.Missing = len(bans)
		return st, nil
	case err != nil:
		return st, err
	}
	st.SetPresent = true
	st.Members = len(members)
	in := make(map[netip.Addr]bool, len(members))
	for _, m := range members {
		in[m.Addr] = true
		if _, ok := bans[m.Addr]; !ok {
			st.Extra++
		}
	}
	for a := range bans {
		if !in[a] {
			st.Missing++
		}
	}
	return st, nil
}

// locked reports whether another process holds the lock file at path.
func locked(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	got, err := fsutil.TryLock(f)
	if err != nil {
		return false
	}
	if got {
		fsutil.Unlock(f)
	}
	return !got
}
