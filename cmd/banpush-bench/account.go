package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// account is the account the peers' sshd logs the pusher in as, and that
// runs 'banpush receive'.
type account struct {
	name     string
	uid, gid int
	shell    string
}

// receiverAccount returns the receiving account. As in production
// (contrib/sshd/setup-receiver.sh) it is a system account with /bin/sh:
// the shell sshd runs the forced command with is part of every delivery,
// and a login shell that reads rc files (bash reads ~/.bashrc under sshd)
// would be measured instead of banpush. The account is created if it does
// not exist, and then deleted at the end; "root" uses root as it is.
func (b *bench) receiverAccount(name string) (*account, error) {
	if _, err := user.Lookup(name); err != nil {
		if name == "root" {
			return nil, err
		}
		if err := run(b.ctx, "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/bin/sh", "--comment", "banpush-bench receiver", name); err != nil {
			return nil, err
		}
		b.cl.add(func() {
			if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "banpush-bench: userdel %s: %v %s\n", name, err, out)
			}
		})
		// '*', not '!': without PAM, sshd refuses a locked account.
		if err := run(b.ctx, "usermod", "-p", "*", name); err != nil {
			return nil, err
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &account{name: name, shell: "/bin/sh"}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Split(l, ":"); len(f) == 7 && f[0] == name && f[6] != "" {
				a.shell = f[6]
			}
		}
	}
	return a, nil
}

// ownedDir creates dir for the account to write its logs in.
func (a *account) ownedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chown(dir, a.uid, a.gid)
}

// credential runs a command as the account.
func (a *account) credential() *syscall.SysProcAttr {
	if a.uid == os.Geteuid() {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}}
}
