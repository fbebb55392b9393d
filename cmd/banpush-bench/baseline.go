package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banpush/banpush/sshpush/wire"
)

// baselines are the bash scripts that push one ban ($1) with ssh(1), the
// way the seed recipe does from actionban, against the peers of a setup.
type baselines struct {
	seed     string // each peer in turn
	parallel string // every peer at once, & and wait
	waves    string // the same, waveSize peers at a time
	master   string // every peer at once, over open ControlMaster connections
	cmDir    string
	ports    []int
	sshOpts  []string
}

// waveSize is how many ssh processes the waves baseline runs at once: all
// of 500 at once would measure the machine's memory and sshd's MaxStartups
// rather than ssh.
const waveSize = 100

// sshOptions are the only options given to ssh(1): everything else is
// OpenSSH's default (key exchange included). -F /dev/null keeps
// ~/.ssh/config out. ConnectTimeout=5 matches banpush's inventory, so that
// a peer that never answers costs both the same.
func (b *bench) sshOptions() []string {
	return []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-o", "User=" + b.user, "-o", "UserKnownHostsFile=" + b.kh, "-i", b.key}
}

func (b *bench) writeBaselines(dir string, ports []int) (baselines, error) {
	bl := baselines{
		seed:     filepath.Join(dir, "seed-loop.sh"),
		parallel: filepath.Join(dir, "parallel-ssh.sh"),
		waves:    filepath.Join(dir, "parallel-ssh-waves.sh"),
		master:   filepath.Join(dir, "controlmaster.sh"),
		cmDir:    filepath.Join(dir, "cm"),
		ports:    ports,
		sshOpts:  b.sshOptions(),
	}
	if err := os.MkdirAll(bl.cmDir, 0o700); err != nil {
		return bl, err
	}
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	ssh := "ssh " + shellJoin(bl.sshOpts)
	ban := shellQuote(wire.Ban.String())
	head := "#!/bin/bash\nip=$1\n"
	loop := "for port in " + strings.Join(ps, " ") + "; do\n"
	scripts := map[string]string{
		bl.seed: head + loop +
			"  " + ssh + ` -p "$port" 127.0.0.1 ` + ban + ` <<< "$ip"` + "\ndone\n",
		bl.parallel: head + loop +
			"  " + ssh + ` -p "$port" 127.0.0.1 ` + ban + ` <<< "$ip" &` + "\ndone\nwait\n",
		bl.waves: head + "n=0\n" + loop +
			"  " + ssh + ` -p "$port" 127.0.0.1 ` + ban + ` <<< "$ip" &` + "\n" +
			"  n=$((n+1)); if [ $((n % " + strconv.Itoa(waveSize) + ")) -eq 0 ]; then wait; fi\ndone\nwait\n",
		bl.master: head + loop +
			"  " + ssh + " -o ControlMaster=no -o ControlPath=" + shellQuote(bl.cmDir) + `/%p -p "$port" 127.0.0.1 ` + ban + ` <<< "$ip" &` + "\ndone\nwait\n",
	}
	for path, text := range scripts {
		if err := os.WriteFile(path, []byte(text), 0o700); err != nil {
			return bl, err
		}
	}
	return bl, nil
}

// runScript runs one baseline script for one ban, its output read through
// a pipe as fail2ban would, and returns its run time and CPU time.
func (b *bench) runScript(script, ip string) (wall, cpu time.Duration, err error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C"}
	return b.timeSh(env, `/bin/bash '`+script+`' "$1" 2>&1 | cat`, ip)
}

var masterPID = regexp.MustCompile(`pid=(\d+)`)

// openMasters opens one ControlMaster connection per peer (ControlPersist),
// the best case for ssh(1): every later ssh is a new session on it.
func (b *bench) openMasters(s *setup) error {
	if s.mastersOpen {
		return nil
	}
	s.mastersOpen = true
	bl := s.scripts
	for _, port := range bl.ports {
		path := filepath.Join(bl.cmDir, strconv.Itoa(port))
		args := append(append([]string{}, bl.sshOpts...), "-o", "ControlMaster=yes", "-o", "ControlPath="+path,
			"-o", "ControlPersist=yes", "-E", path+".log", "-N", "-f", "-p", strconv.Itoa(port), "127.0.0.1")
		// -f: the master forks into the background; its stdio must not be
		// a pipe we wait on.
		cmd := command(b.ctx, "ssh", args...)
		if err := cmd.Run(); err != nil {
			log, _ := os.ReadFile(path + ".log")
			return fmt.Errorf("ssh ControlMaster to port %d: %v\n%s", port, err, log)
		}
		out, _ := command(b.ctx, "ssh", "-F", "/dev/null", "-o", "ControlPath="+path, "-O", "check", "-p", strconv.Itoa(port), "127.0.0.1").CombinedOutput()
		m := masterPID.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("ssh -O check port %d: %s", port, out)
		}
		pid, _ := strconv.Atoi(string(m[1]))
		s.masters = append(s.masters, pid)
		b.cl.add(func() {
			exec.Command("ssh", "-F", "/dev/null", "-o", "ControlPath="+path, "-O", "exit", "-p", strconv.Itoa(port), "127.0.0.1").Run()
			syscall.Kill(pid, syscall.SIGTERM)
		})
	}
	return nil
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if regexp.MustCompile(`^[A-Za-z0-9_./=:-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
