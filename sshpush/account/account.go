// Package account makes and mends, as root, what the receiving account
// needs: its home, ~/.ssh and ~/.ssh/authorized_keys, and the directory of
// the received log, where the account keeps its state files and appends to
// the log but can never truncate, rewrite or replace it.
//
// What it trusts: its caller, for the account's ids and the paths. What it
// does not trust: anything in a directory the account can change. There it
// works only through descriptors (package fsutil): it never follows a link
// the account could have made, never opens, creates, chowns or chmods by
// path, and reads no file. The received log's directory belongs to root;
// while root works in it, it is closed to the account, so that the account
// never holds a descriptor of a log that is not yet append-only.
package account

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/sys/unix"
)

// Account is the receiving account, as the user database has it.
type Account struct {
	Name string
	UID  int
	GID  int // its primary group
	Home string
}

// Report is what a setup did, for the caller to show: Notes are changes
// it made, Warnings what it could not make safe.
type Report struct {
	Notes    []string
	Warnings []string
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Modes of what SetupHome makes.
const (
	homeMode = 0o750
	sshMode  = 0o700
	keysMode = 0o600
)

// SetupHome makes the account's home, ~/.ssh and an empty
// ~/.ssh/authorized_keys where they are missing, gives ~/.ssh to the
// account with mode 0700, and leaves the content of authorized_keys alone.
// It refuses, changing nothing further, a symbolic link where ~/.ssh or
// authorized_keys should be, anything but a directory or a regular file
// there, and a home or ~/.ssh of another account.
func SetupHome(a Account, r *Report) error {
	hd, err := setupHomeDir(a, r)
	if err != nil {
		return err
	}
	defer hd.Close()
	sd, err := setupSSHDir(hd, a, r)
	if err != nil {
		return err
	}
	defer sd.Close()
	return setupKeys(sd, a, r)
}

// setupHomeDir opens the account's home, making it if it is missing, and
// checks that it is root's or the account's.
func setupHomeDir(a Account, r *Report) (*fsutil.Dir, error) {
	home := filepath.Clean(a.Home)
	if !filepath.IsAbs(home) || home == "/" {
		return nil, fmt.Errorf("account: %s's home %q: not an absolute path below /", a.Name, a.Home)
	}
	parent, err := fsutil.OpenDir(filepath.Dir(home))
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	defer parent.Close()
	if err := rootsParent(parent, a); err != nil {
		return nil, err
	}
	hd, made, err := mkdirOrRootLink(parent, home, sshMode)
	if err != nil {
		return nil, linkError(err)
	}
	st, err := hd.Stat()
	if err != nil {
		hd.Close()
		return nil, fmt.Errorf("account: %w", err)
	}
	switch {
	case made && st.Uid == 0:
		if err := hd.Chown(a.UID, a.GID); err != nil {
			hd.Close()
			return nil, fmt.Errorf("account: %w", err)
		}
		if err := hd.Chmod(homeMode); err != nil {
			hd.Close()
			return nil, fmt.Errorf("account: %w", err)
		}
		r.note("made %s, %s's home", home, a.Name)
	case st.Uid != 0 && int(st.Uid) != a.UID:
		hd.Close()
		return nil, fmt.Errorf("account: %s belongs to uid %d, neither root nor %s", home, st.Uid, a.Name)
	}
	return hd, nil
}

// setupSSHDir opens ~/.ssh in the home hd, making it if it is missing,
// and gives it to the account with mode 0700.
func setupSSHDir(hd *fsutil.Dir, a Account, r *Report) (*fsutil.Dir, error) {
	sd, made, err := hd.MkdirSub(".ssh", sshMode)
	if err != nil {
		return nil, linkError(err)
	}
	if err := ownSSHDir(sd, made, a, r); err != nil {
		sd.Close()
		return nil, err
	}
	return sd, nil
}

func ownSSHDir(sd *fsutil.Dir, made bool, a Account, r *Report) error {
	st, err := sd.Stat()
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	switch {
	case st.Uid == 0:
		if err := sd.Chown(a.UID, a.GID); err != nil {
			return fmt.Errorf("account: %w", err)
		}
		if made {
			r.note("made %s", sd.Path())
		} else {
			r.note("gave %s to %s", sd.Path(), a.Name)
		}
	case int(st.Uid) != a.UID:
		return fmt.Errorf("account: %s belongs to uid %d, neither root nor %s", sd.Path(), st.Uid, a.Name)
	}
	if st.Mode&0o7777 != sshMode {
		if err := sd.Chmod(sshMode); err != nil {
			return fmt.Errorf("account: %w", err)
		}
		r.note("set the mode of %s to %04o", sd.Path(), sshMode)
	}
	return nil
}

// setupKeys makes an empty authorized_keys in ~/.ssh (sd) where there is
// none, and checks the one there is.
func setupKeys(sd *fsutil.Dir, a Account, r *Report) error {
	const keys = "authorized_keys"
	f, kst, err := sd.Open(keys, unix.O_RDONLY)
	switch {
	case errors.Is(err, os.ErrNotExist):
		nf, err := sd.Create(keys, keysMode, a.UID, a.GID)
		if err != nil {
			return fmt.Errorf("account: %w", err)
		}
		if err := nf.Close(); err != nil {
			return fmt.Errorf("account: %w", err)
		}
		r.note("made %s/%s, empty: nobody can push here until 'banpush authorize --install' adds a line", sd.Path(), keys)
		return nil
	case err != nil:
		return linkError(err)
	}
	f.Close()
	switch {
	case kst.Uid != 0 && int(kst.Uid) != a.UID:
		return fmt.Errorf("account: %s/%s belongs to uid %d, neither root nor %s", sd.Path(), keys, kst.Uid, a.Name)
	case kst.Nlink != 1:
		return fmt.Errorf("account: %s/%s has %d names (hard links): make it a file of its own", sd.Path(), keys, kst.Nlink)
	}
	return nil
}

// Log says where the received log is and who may do what with it.
type Log struct {
	Path    string  // the received log, as the authorized_keys lines name it
	Account Account // appends to it, and keeps its state files beside it
	GID     int     // the group that may read it (adm)
	Now     func() time.Time
}

// Modes of the received log's directory and of the log. Open, the
// directory is root's, the account's group may add its state files (the
// sticky bit keeps it from removing or renaming what is not its own), and
// anyone may reach a file by name (the log's group reads the log); closed,
// nobody but root may look up a name in it.
const (
	dirOpen   = 0o1771
	dirClosed = 0o1700
	logMode   = 0o640
)

// Closed reports whether the received log's directory dir is closed to
// the account because root is working in it (a rotation, or setup-account
// making the log): root's, with the mode root gives it for that time. A
// receiver that cannot open its files then is to try again in a moment,
// not to report a log it cannot write.
func Closed(dir string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false
	}
	return st.Uid == 0 && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&0o7777 == dirClosed
}

// SetupLog makes the received log's directory root's and the log an
// append-only file of the account's (chattr +a, where the file system has
// it): the account appends, and cannot truncate it, rewrite it, punch
// holes in it, replace it or change its mode. A log the account could
// have rewritten (the log of earlier versions, or one the receiver made
// because it was missing) is moved aside, and a new one takes its place.
// The rotated logs (LOG.1, LOG.2.gz, ...) are given to root. All of it
// happens with the directory closed; it is open again when SetupLog
// returns, even after an error.
func SetupLog(l Log, r *Report) (err error) {
	d, err := openLogDir(l, r, true)
	if err != nil {
		return err
	}
	defer func() {
		if oerr := reopen(d, l); err == nil {
			err = oerr
		}
		d.Close()
	}()
	base := filepath.Base(l.Path)
	if err := makeLog(d, base, l, r); err != nil {
		return err
	}
	if err := giveRotated(d, base, l, r); err != nil {
		return err
	}
	return d.Sync()
}

// BeginRotation is logrotate's prerotate: it closes the log's directory
// to the account and lifts the log's append-only attribute, so that
// logrotate can rename the log. SetupLog, as its postrotate, then makes the
// new log and opens the directory again. On an error, the directory is
// open again.
func BeginRotation(l Log, r *Report) (err error) {
	d, err := openLogDir(l, r, false)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			reopen(d, l)
		}
		d.Close()
	}()
	base := filepath.Base(l.Path)
	f, st, err := d.Open(base, unix.O_RDONLY)
	if err != nil {
		return fmt.Errorf("account: nothing to rotate: %w", err)
	}
	defer f.Close()
	if int(st.Uid) != l.Account.UID || st.Nlink != 1 {
		return fmt.Errorf("account: %s is not the log 'banpush setup-account' makes: run it first", l.Path)
	}
	if err := fsutil.SetAppendOnly(f, false); err != nil && !errors.Is(err, fsutil.ErrNoAttributes) {
		return fmt.Errorf("account: %w", err)
	}
	r.note("closed %s to %s for the rotation; 'banpush setup-account' makes the new log and opens it again", d.Path(), l.Account.Name)
	return nil
}

// openLogDir opens the log's directory and closes it to the account,
// taking it over from the account where it still has it (the layout of
// earlier versions); with make, it makes a missing directory.
func openLogDir(l Log, r *Report, mk bool) (*fsutil.Dir, error) {
	path := filepath.Clean(l.Path)
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("account: %s: not an absolute path", l.Path)
	}
	dir := filepath.Dir(path)
	parent, err := fsutil.OpenDir(filepath.Dir(dir))
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	defer parent.Close()
	if err := rootsParent(parent, l.Account); err != nil {
		return nil, err
	}
	var d *fsutil.Dir
	made := false
	if mk {
		d, made, err = mkdirOrRootLink(parent, dir, 0o700)
	} else {
		d, made, err = mkdirOrRootLink(parent, dir, 0)
	}
	if err != nil {
		return nil, linkError(err)
	}
	st, err := d.Stat()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("account: %w", err)
	}
	switch {
	case made:
		r.note("made %s", dir)
	case st.Uid == 0:
	case int(st.Uid) == l.Account.UID && mk:
		r.note("took %s over from %s: the directory is root's now, and the account may add files to it but not remove or rename root's or the log", dir, l.Account.Name)
	case int(st.Uid) == l.Account.UID:
		d.Close()
		return nil, fmt.Errorf("account: %s still belongs to %s: run 'banpush setup-account' first", dir, l.Account.Name)
	default:
		d.Close()
		return nil, fmt.Errorf("account: %s belongs to uid %d, neither root nor %s", dir, st.Uid, l.Account.Name)
	}
	// The owner first: the account can no longer change the mode back.
	if err := d.Chown(0, int(st.Gid)); err != nil {
		d.Close()
		return nil, fmt.Errorf("account: %w", err)
	}
	if err := d.Chmod(dirClosed); err != nil {
		d.Close()
		return nil, fmt.Errorf("account: %w", err)
	}
	return d, nil
}

// rootsParent checks that the account cannot replace what is in the
// directory parent (its home, the log's directory): it must be root's, and
// neither the account's group nor everyone may write to it. (Ubuntu's
// /var/log is writable by the group syslog: not the account's.)
func rootsParent(parent *fsutil.Dir, a Account) error {
	st, err := parent.Stat()
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	if st.Uid != 0 || st.Mode&0o002 != 0 || (st.Mode&0o020 != 0 && int(st.Gid) == a.GID) {
		return fmt.Errorf("account: %s is not root's, or %s may change it: root would work where the account can replace things", parent.Path(), a.Name)
	}
	return nil
}

// mkdirOrRootLink opens the directory path, whose parent is root's alone,
// making it with mode perm if it is missing (and perm is not 0). A
// symbolic link in its place can only be root's: it is followed, as
// fsutil.OpenDir follows it.
func mkdirOrRootLink(parent *fsutil.Dir, path string, perm uint32) (*fsutil.Dir, bool, error) {
	var d *fsutil.Dir
	var made bool
	var err error
	if perm != 0 {
		d, made, err = parent.MkdirSub(filepath.Base(path), perm)
	} else {
		d, err = parent.Sub(filepath.Base(path))
	}
	if errors.Is(err, fsutil.ErrLink) {
		d, err = fsutil.OpenDir(path)
	}
	return d, made, err
}

// reopen gives the directory back its open mode and the account's group.
func reopen(d *fsutil.Dir, l Log) error {
	if err := d.Chown(0, l.Account.GID); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	if err := d.Chmod(dirOpen); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	return nil
}

// makeLog leaves an append-only log of the account's as it is, and puts
// one in place of anything else.
func makeLog(d *fsutil.Dir, base string, l Log, r *Report) error {
	path := d.Path() + "/" + base
	f, st, err := d.Open(base, unix.O_RDONLY)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return createLog(d, base, l, r)
	case err != nil:
		// A link or a special file the account put there: it goes.
		if err := d.Remove(base); err != nil {
			return fmt.Errorf("account: %s is neither the log nor something root may remove: %w", path, err)
		}
		r.note("removed %s, which was not a regular file", path)
		return createLog(d, base, l, r)
	}
	defer f.Close()
	ao, aerr := fsutil.AppendOnly(f)
	switch {
	case aerr != nil && !errors.Is(aerr, fsutil.ErrNoAttributes):
		return fmt.Errorf("account: %w", aerr)
	case ao && int(st.Uid) == l.Account.UID && st.Nlink == 1:
		return nil // as SetupLog left it
	case errors.Is(aerr, fsutil.ErrNoAttributes) && int(st.Uid) == l.Account.UID && st.Nlink == 1:
		if st.Mode&0o7777 != logMode || int(st.Gid) != l.GID {
			if err := fsutil.SetOwner(f, logMode, l.Account.UID, l.GID); err != nil {
				return fmt.Errorf("account: %w", err)
			}
		}
		r.warn("%s: the file system has no append-only attribute: %s can truncate the log, and fail2ban reads a line of any length (docs/security.md)", path, l.Account.Name)
		return nil
	}
	// The account could have rewritten this file, and may still hold a
	// descriptor that writes anywhere in it: keep it, as root's, under
	// another name, and start a new log.
	if ao {
		if err := fsutil.SetAppendOnly(f, false); err != nil {
			return fmt.Errorf("account: %w", err)
		}
	}
	if err := unix.Fchown(int(f.Fd()), 0, l.GID); err != nil {
		return fmt.Errorf("account: %s: chown: %w", path, err)
	}
	aside, err := freeName(d, base+".replaced-"+l.now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return err
	}
	if err := d.Rename(base, aside); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	r.note("moved %s, which %s could rewrite, to %s", path, l.Account.Name, aside)
	return createLog(d, base, l, r)
}

// createLog makes the log: the account's, group l.GID, mode 0640,
// append-only. The directory is closed: the account can open it only
// once it is append-only.
func createLog(d *fsutil.Dir, base string, l Log, r *Report) error {
	f, err := d.Create(base, logMode, l.Account.UID, l.GID)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	defer f.Close()
	switch err := fsutil.SetAppendOnly(f, true); {
	case errors.Is(err, fsutil.ErrNoAttributes):
		r.warn("%s: the file system has no append-only attribute: %s can truncate the log, and fail2ban reads a line of any length (docs/security.md)", f.Name(), l.Account.Name)
	case err != nil:
		d.Remove(base)
		return fmt.Errorf("account: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	r.note("made %s, append-only, for %s to append to", f.Name(), l.Account.Name)
	return nil
}

// rotatedName matches the names logrotate gives a rotated log: LOG.1,
// LOG.2.gz, ...
var rotatedName = regexp.MustCompile(`^\.[0-9]+(\.[a-z0-9]+)?$`)

// giveRotated gives the rotated logs of the account's to root, so that
// the account can no longer rename or replace them under logrotate and
// 'banpush apply-unbans', which read them as root. Links and special files
// under their names go.
func giveRotated(d *fsutil.Dir, base string, l Log, r *Report) error {
	names, err := d.Names()
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if len(name) <= len(base) || name[:len(base)] != base || !rotatedName.MatchString(name[len(base):]) {
			continue
		}
		f, st, err := d.Open(name, unix.O_RDONLY)
		if err != nil {
			if rerr := d.Remove(name); rerr != nil {
				r.warn("%s/%s: neither a rotated log nor something root may remove: %v", d.Path(), name, rerr)
			} else {
				r.note("removed %s/%s, which was not a regular file", d.Path(), name)
			}
			continue
		}
		if int(st.Uid) == l.Account.UID && st.Nlink == 1 {
			if err := unix.Fchown(int(f.Fd()), 0, l.GID); err != nil {
				f.Close()
				return fmt.Errorf("account: %s/%s: chown: %w", d.Path(), name, err)
			}
			r.note("gave the rotated log %s/%s to root", d.Path(), name)
		}
		f.Close()
	}
	return nil
}

// freeName returns name, or name with a suffix, that nothing in d has.
func freeName(d *fsutil.Dir, name string) (string, error) {
	try := name
	for i := 1; i < 100; i++ {
		if _, err := d.Lstat(try); errors.Is(err, os.ErrNotExist) {
			return try, nil
		}
		try = fmt.Sprintf("%s-%d", name, i)
	}
	return "", fmt.Errorf("account: %s/%s: no free name", d.Path(), name)
}

func (l Log) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// linkError says what to do about a link or a wrong kind of file where
// SetupHome or SetupLog expects a directory or a file.
func linkError(err error) error {
	if errors.Is(err, fsutil.ErrLink) {
		return fmt.Errorf("account: %w: root never works through a link in a directory another account can change; remove it, then run this again", err)
	}
	return fmt.Errorf("account: %w", err)
}
