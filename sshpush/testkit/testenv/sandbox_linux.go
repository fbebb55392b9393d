package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// roleEnv tells a test binary which part of the sandbox it plays: unset at
// the top (the binary go test started), "init" for process 1 of the
// sandbox, "inner" for the binary that runs the tests inside it. Its name
// has no BANPUSH_ prefix, so that tests that clear banpush's variables
// leave it alone.
const roleEnv = "banpush_testenv_role"

// OptOutEnv, set to "off", runs the tests of a root user without a sandbox.
const OptOutEnv = "BANPUSH_TEST_SANDBOX"

// setupFailed is init's exit status when it could not build the sandbox;
// it has run no test then.
const setupFailed = 125

// Sandbox runs the calling test binary's tests in a sandbox, when it runs
// as root (see the package comment): call it first thing in TestMain,
//
//	if code, ran := testenv.Sandbox(); ran {
//		os.Exit(code)
//	}
//
// If ran is true, the tests have run inside the sandbox and code is their
// exit status. If it is false, the caller runs the tests itself: it is
// already inside the sandbox, or not root, or the binary was not started
// as a test binary (a testscript command, a helper), or OptOutEnv is off.
// Outside CI, a machine that cannot build a sandbox runs the tests without
// one, after a warning; in CI that is a failure.
func Sandbox() (code int, ran bool) {
	switch os.Getenv(roleEnv) {
	case "init":
		os.Exit(sandboxInit())
	case "inner":
		return 0, false
	}
	if os.Geteuid() != 0 || os.Getenv(OptOutEnv) == "off" || !strings.HasSuffix(os.Args[0], ".test") {
		return 0, false
	}
	code, err := runSandbox()
	if err == nil {
		return code, true
	}
	if CI() {
		fmt.Fprintf(os.Stderr, "testenv: %v (CI is set: the sandbox is required)\n", err)
		return 1, true
	}
	fmt.Fprintf(os.Stderr, "testenv: warning: %v; running the tests without a sandbox\n", err)
	return 0, false
}

// Sandboxed reports whether the tests run inside the sandbox.
func Sandboxed() bool { return os.Getenv(roleEnv) == "inner" }

// runSandbox starts this binary again as process 1 of new PID, mount,
// network, UTS and IPC namespaces, and returns the exit status of the
// tests it runs. The child gets SIGKILL when this process dies
// (Pdeathsig): its namespaces and everything in them die with it.
func runSandbox() (int, error) {
	// Pdeathsig fires when the thread that started the child ends, not
	// the process: keep this goroutine on its thread for good.
	runtime.LockOSThread()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), roleEnv+"=init")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	// A Ctrl-C or go test's SIGQUIT at its timeout reaches process 1,
	// which passes it on to the tests.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGHUP)
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee) && ee.ExitCode() == setupFailed:
		return 0, errors.New("sandbox: could not be built")
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), nil
	}
	fmt.Fprintf(os.Stderr, "testenv: the sandbox's process 1 ended: %v\n", err)
	return 1, nil
}

// sandboxInit is process 1 of the sandbox: it builds the file system
// view, starts the tests, reaps every orphan until they end, and exits
// with their status. When it exits the kernel kills every process left in
// the PID namespace, and the mounts and the network namespace go with the
// last of them.
func sandboxInit() int {
	if err := buildRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: sandbox: %v\n", err)
		return setupFailed
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: sandbox: %v\n", err)
		return setupFailed
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, roleEnv+"=") || strings.HasPrefix(kv, "GOPROXY=") || strings.HasPrefix(kv, "GOSUMDB=")
	})
	// No network in here: the go command takes modules from the module
	// cache, which the go command verified when it downloaded them.
	env = append(env, roleEnv+"=inner", "GOPROXY=file://"+modCache()+"/cache/download", "GOSUMDB=off")
	pid, err := syscall.ForkExec("/proc/self/exe", os.Args, &syscall.ProcAttr{
		Dir:   mustGetwd(),
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: sandbox: starting the tests: %v\n", err)
		return setupFailed
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGHUP)
	go func() {
		for s := range sigs {
			syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv: sandbox: wait: %v\n", err)
			return 1
		}
		if got != pid {
			continue // an orphan: reaped, as a process 1 must
		}
		if ws.Signaled() {
			fmt.Fprintf(os.Stderr, "testenv: sandbox: the tests were killed by %v\n", ws.Signal())
			return 1
		}
		return ws.ExitStatus()
	}
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}

// scratch is where process 1 builds the new root, on a tmpfs of its own
// that hides the machine's /run in the sandbox's first view only.
const scratch = "/run"

// buildRoot gives the sandbox its own view of the files: every file
// system of the machine behind an overlay whose upper layer is in memory,
// so that the tests may install packages, add accounts and write anywhere
// and all of it vanishes with the sandbox; a fresh /proc, /run, /tmp,
// /dev/shm;
// the machine's /dev and /sys; and, written through to the machine, the
// go command's build cache and the directory of the test binary (where
// go test reads what the binary writes for it). It then makes that view
// the root (pivot_root) and detaches the machine's.
func buildRoot() error {
	wd := mustGetwd()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	if err := unix.Mount("banpush-sandbox", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", scratch, err)
	}
	root := filepath.Join(scratch, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	for i, m := range mounts {
		target := filepath.Join(root, m.dir)
		if err := overlay(m.dir, target, filepath.Join(scratch, "layers", strconv.Itoa(i))); err != nil {
			if m.dir == "/" {
				return err
			}
			// A file system overlayfs cannot sit on: the tests see it
			// as it is, read-only.
			if err := unix.Mount(m.dir, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s: %w", m.dir, err)
			}
			unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_REC, "")
		}
	}
	if err := mountFresh(root); err != nil {
		return err
	}
	// A checkout under /tmp (a CI job's, often) would vanish under the
	// fresh /tmp: it gets an overlay of its own.
	if mod := moduleRoot(wd); underAny(mod, "/tmp", "/dev/shm") {
		if err := overlay(mod, filepath.Join(root, mod), filepath.Join(scratch, "layers", "checkout")); err != nil {
			return err
		}
	}
	for _, b := range writeThrough() {
		if err := bindSame(root, b); err != nil {
			return err
		}
	}
	old := filepath.Join(root, ".oldroot")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	os.Remove("/.oldroot")
	return unix.Chdir(wd)
}

// overlay mounts on target an overlay of the directory lower, whose upper
// layer and work directory it makes in layers.
func overlay(lower, target, layers string) error {
	upper, work := filepath.Join(layers, "upper"), filepath.Join(layers, "work")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("banpush-sandbox", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay on %s: %w", lower, err)
	}
	return nil
}

// moduleRoot is the directory of the go.mod above dir (the checkout whose
// tests run), or dir itself.
func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// mountFresh mounts what the sandbox gets new or shares with the machine,
// under root.
func mountFresh(root string) error {
	steps := []struct {
		dir, src, fstype string
		flags            uintptr
		data             string
	}{
		{"/proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/dev", "/dev", "", unix.MS_BIND | unix.MS_REC, ""},
		{"/dev/shm", "shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"/sys", "/sys", "", unix.MS_BIND | unix.MS_REC, ""},
		{"/run", "run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		// On tmpfs, not on the overlay: an overlay cannot be the upper
		// layer of another, and the demo's hosts put theirs in /tmp.
		{"/tmp", "tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	}
	for _, s := range steps {
		target := filepath.Join(root, s.dir)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(s.src, target, s.fstype, s.flags, s.data); err != nil {
			return fmt.Errorf("mounting %s: %w", s.dir, err)
		}
	}
	// What a booted Debian machine has in /run (tmpfiles.d): sshd -T and
	// sshd -t insist on the privilege separation directory.
	if err := os.Mkdir(filepath.Join(root, "run/lock"), 0o1777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "run/lock"), 0o1777); err != nil {
		return err
	}
	return os.Mkdir(filepath.Join(root, "run/sshd"), 0o755)
}

// bindSame bind-mounts path, a directory or a file of the machine, on the
// same path under root.
func bindSame(root, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	target := filepath.Join(root, path)
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return err
	}
	if err := unix.Mount(path, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	return nil
}

// writeThrough lists the directories the sandbox writes to the machine:
// the go command's build cache (tests build banpush), and the directory of
// a test binary that go test built (it reads the binary's test log and
// coverage there), or else the test binary itself when the fresh /tmp
// would hide it (go test -c -o /tmp/x.test): testscript runs it again.
func writeThrough() []string {
	var out []string
	cache := os.Getenv("GOCACHE")
	if cache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(dir, "go-build")
		}
	}
	if fi, err := os.Stat(cache); err == nil && fi.IsDir() && filepath.IsAbs(cache) {
		out = append(out, cache)
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		switch {
		case strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "go-build"):
			out = append(out, dir)
		case underAny(exe, "/tmp", "/run", "/dev/shm"):
			out = append(out, exe)
		}
	}
	return out
}

// modCache is the go command's module cache, as 'go env GOMODCACHE'
// finds it.
func modCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if p := filepath.SplitList(os.Getenv("GOPATH")); len(p) > 0 && p[0] != "" {
		return filepath.Join(p[0], "pkg", "mod")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "pkg", "mod")
}

// mount is one file system of the machine that the sandbox overlays.
type mount struct{ dir, fstype string }

// virtual file systems are never overlaid: the sandbox has its own /proc,
// /run, /tmp and /dev/shm and shares /dev and /sys.
var virtual = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "cgroup": true, "cgroup2": true,
	"mqueue": true, "debugfs": true, "tracefs": true, "securityfs": true, "pstore": true, "bpf": true,
	"fusectl": true, "configfs": true, "hugetlbfs": true, "autofs": true, "binfmt_misc": true, "nsfs": true,
	"efivarfs": true, "rpc_pipefs": true,
}

// readMounts lists the machine's file systems to overlay, parents first,
// from /proc/self/mountinfo: every one but the virtual ones and those
// under /proc, /sys, /dev, /run and /tmp. Of several mounts on one directory,
// the last (the visible one) counts.
func readMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		m := mount{dir: unescapeMount(fields[4]), fstype: fields[sep+1]}
		if virtual[m.fstype] || m.dir != "/" && underAny(m.dir, "/proc", "/sys", "/dev", "/run", "/tmp") {
			continue
		}
		if i, ok := seen[m.dir]; ok {
			out[i] = m
			continue
		}
		seen[m.dir] = len(out)
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].dir != "/" {
		return nil, errors.New("no root file system in /proc/self/mountinfo")
	}
	// Parents before children: a shorter path cannot be below a longer one.
	slices.SortStableFunc(out, func(a, b mount) int { return strings.Count(a.dir, "/") - strings.Count(b.dir, "/") })
	return out, nil
}

func underAny(dir string, tops ...string) bool {
	for _, t := range tops {
		if dir == t || strings.HasPrefix(dir, t+"/") {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loopbackUp brings up lo, the only interface of the sandbox's network
// namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}
