// Package doctor checks a host's banpush setup as a pusher and as a
// receiver: the spool, the jails that should push and whether the running
// fail2ban really loaded their action, the receiving jails and the logs
// they watch, the receiving account, its authorized_keys lines, the sshd
// settings in force for it, and the flush timer. Each check returns
// Results; the command decides how to print them and what to exit with.
//
// What it trusts: the files and programs of this host that root owns
// (fail2ban-client, sshd, systemctl, /etc/passwd). The receiving account's
// authorized_keys belongs to that account: it is read through descriptors
// (never through a link the account made, never another account's file
// under a second name), bounded, parsed with x/crypto/ssh, and quoted in
// results only by line number and by the paths banpush itself would use.
package doctor

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush/record"
)

// Status is a check's verdict.
type Status string

// The verdicts. Skip is a check that does not apply to this host.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is one check. Its JSON keys are part of 'banpush doctor --json'.
type Result struct {
	Check   string `json:"check"`             // what was checked: "spool", "push-action", ...
	Subject string `json:"subject,omitempty"` // which one: a jail, a peer, "line 3"
	Status  Status `json:"status"`
	Found   string `json:"found"`          // what was found
	Hint    string `json:"hint,omitempty"` // what to do about it
}

func result(check, subject string, st Status, hint, format string, args ...any) Result {
	return Result{Check: check, Subject: subject, Status: st, Found: fmt.Sprintf(format, args...), Hint: hint}
}

// Runner runs a program with arguments (never through a shell) and
// returns its standard output. Tests replace it for the programs that
// need a running systemd.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Exec is the Runner that runs the real program, for at most 20 seconds.
func Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second // a child holding the pipes cannot outlive the timeout
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		msg := strings.TrimSpace(string(ee.Stderr))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return out, fmt.Errorf("%s: %w: %s", name, err, record.Printable(msg))
		}
	}
	return out, err
}

// Failed reports whether any result is a Fail.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}
