package firewall

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// Local unbans. 'banpush unban' on this host lifts an address in the
// local fail2ban; where the fast path bans, it also asks the engine to
// lift it: it appends the address to STATE.lift (root's, beside the
// state), and the engine takes the file at its next run (or start):
// renamed to STATE.lift.taking, its addresses lifted from the state and
// the kernel, then removed. A lift asked while the service is stopped
// is applied before its next start restores anything.

// LiftPath is where lift requests wait, beside the state at state.
func LiftPath(state string) string { return state + ".lift" }

// maxLiftFile bounds what is read of a lift file: far more addresses than
// anyone unbans between two runs.
const maxLiftFile = 1 << 20

// ErrNoFastPath is returned by RequestLift when the state's directory
// does not exist: banpush firewall never ran here.
var ErrNoFastPath = errors.New("firewall: banpush firewall never ran here (no state directory)")

// RequestLift asks the engine of the state at state to lift addrs: it
// appends one line per address to STATE.lift and syncs it. The file is
// opened without following a link, in the state's own directory.
func RequestLift(state string, addrs []netip.Addr) error {
	if _, err := os.Stat(filepath.Dir(state)); errors.Is(err, os.ErrNotExist) {
		return ErrNoFastPath
	}
	fd, err := unix.Open(LiftPath(state), unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("firewall: lift requests: %w", err)
	}
	f := os.NewFile(uintptr(fd), LiftPath(state))
	defer f.Close()
	var b []byte
	for _, a := range addrs {
		b = append(a.Unmap().AppendTo(b), '\n')
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("firewall: lift requests: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("firewall: lift requests: %w", err)
	}
	return nil
}

// takeLifts returns the addresses of the lift requests waiting, and a
// function that removes them once they are applied. A file left by a run
// that died after taking it is taken again first.
func (e *Engine) takeLifts() ([]netip.Addr, func(), error) {
	path := LiftPath(e.cfg.State)
	taking := path + ".taking"
	if _, err := os.Lstat(taking); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(path, taking); errors.Is(err, os.ErrNotExist) {
			return nil, func() {}, nil
		} else if err != nil {
			return nil, nil, fmt.Errorf("firewall: lift requests: %w", err)
		}
	}
	// Only the file taken: a request made since waits for the next run,
	// which may follow a new ban of the address it must not lift.
	addrs, err := readLifts(taking)
	if err != nil {
		return nil, nil, err
	}
	return addrs, func() { _ = os.Remove(taking) }, nil
}

// readLifts reads the addresses of a lift file, at most maxLiftFile bytes
// of it, passing over a line that is not one address; a missing file has
// none.
func readLifts(path string) ([]netip.Addr, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("firewall: lift requests: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("firewall: lift requests %s: not a regular file", path)
	}
	var addrs []netip.Addr
	sc := bufio.NewScanner(io.LimitReader(f, maxLiftFile))
	for sc.Scan() {
		if a, err := record.ParseAddr(sc.Text()); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// applyLifts lifts the waiting requests' addresses from the state and
// the kernel: the state first, as apply does.
func (e *Engine) applyLifts(rep *Report) error {
	addrs, done, err := e.takeLifts()
	if err != nil || len(addrs) == 0 {
		if done != nil {
			done()
		}
		return err
	}
	changed := false
	for _, a := range addrs {
		if _, ok := e.bans[a]; ok {
			delete(e.bans, a)
			changed = true
		}
	}
	if changed {
		if err := SaveState(StatePath(e.cfg.State), e.bans, e.cfg.Now()); err != nil {
			return err
		}
	}
	if err := e.k.Delete(addrs); err != nil {
		return err
	}
	rep.Lifted += len(addrs)
	done()
	return nil
}
