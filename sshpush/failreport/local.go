package failreport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/wire"
)

// LocalReceiver gives failure reports to this host's own receiver: it runs
// 'banpush receive' with Argv as the receiving account, as sshd would for
// a peer's fail request, with the batch on its stdin. Root does nothing
// in the account's files itself: the receiver, run as the account, reads
// and writes them, as it does for every peer.
type LocalReceiver struct {
	Binary  string        // this binary
	Argv    []string      // receive's arguments, from the word "receive" on (receive.Args.Argv)
	User    string        // the receiving account
	Timeout time.Duration // DefaultLocalTimeout if zero
}

// DefaultLocalTimeout bounds one run of this host's receiver: twice the
// receiver's own wait for its lock (receive.DefaultLockTimeout), after
// which it answers "busy". The peers' reports are queued before it runs,
// so a stuck receiver delays only the next batch, by this much at most.
const DefaultLocalTimeout = 10 * time.Second

// Send runs the receiver for one batch and checks its answer.
func (l LocalReceiver) Send(ctx context.Context, recs []record.Record) error {
	u, err := user.Lookup(l.User)
	if err != nil {
		return fmt.Errorf("the receiving account %q: %w", l.User, err)
	}
	cred, err := credential(u)
	if err != nil {
		return err
	}
	var batch []byte
	for _, r := range recs {
		batch = wire.AppendRecord(batch, r)
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultLocalTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.Binary, l.Argv...)
	cmd.Dir = "/"
	cmd.Env = []string{
		"SSH_ORIGINAL_COMMAND=" + wire.Fail.String(),
		"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(batch)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setsid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("'%s %s' as %s: %w: %s", l.Binary, strings.Join(l.Argv, " "), l.User, err, lastLine(stderr.Bytes()))
	}
	if _, err := wire.ParseAnswer(stdout.Bytes(), len(recs)); err != nil {
		return fmt.Errorf("this host's receiver answered %q: %w", lastLine(stdout.Bytes()), err)
	}
	return nil
}

// credential is what the receiver runs as: the account, when this is
// root; nothing to change when this already is the account.
func credential(u *user.User) (*syscall.Credential, error) {
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("the receiving account %q: %w", u.Username, err)
	}
	switch euid := os.Geteuid(); {
	case euid == int(uid):
		return nil, nil
	case euid != 0:
		return nil, fmt.Errorf("running this host's receiver as %s needs root", u.Username)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// lastLine is the last non-empty line of b, made printable, for a message.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return record.Printable(lines[len(lines)-1])
}
