package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a sandboxed helper (TestSandboxHelper).
const helperEnv = "TESTENV_SANDBOX_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if code, ran := Sandbox(); ran {
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

// TestSandboxKilled kills a sandboxed test binary with SIGKILL while it
// holds what the suites leave behind when killed (a detached process in a
// session of its own, a network namespace, an account, files in /etc and
// /tmp) and checks that none of it is left on the machine.
func TestSandboxKilled(t *testing.T) {
	Need(t, Root("namespaces, mounts"), Command("ip", "iproute2"), Command("useradd", "passwd"))
	if Sandboxed() {
		t.Skip("runs the sandbox from outside it")
	}
	tag := fmt.Sprintf("testenv-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSandboxHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+tag, OptOutEnv+"=on")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.HasPrefix(sc.Text(), "ready ") {
				ready <- sc.Text()
			}
		}
		ready <- "ended: " + strings.Join(seen, "\n")
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("the sandboxed helper did not get ready in 60 s")
	}
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("the sandboxed helper ended early:\n%s", line)
	}
	t.Logf("helper: %s", line)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// The kernel kills the sandbox's processes once its process 1 has
	// died, which the SIGKILL of the binary causes: give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := processesWith(tag)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed sandbox still run: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := user.Lookup(tag); err == nil {
		t.Errorf("account %s is left on the machine", tag)
	}
	for _, p := range []string{"/etc/" + tag, "/tmp/" + tag, "/run/netns/" + tag} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left on the machine", p)
		}
	}
	if b, err := exec.Command("ip", "netns", "list").CombinedOutput(); err == nil && strings.Contains(string(b), tag) {
		t.Errorf("network namespace %s is left on the machine: %s", tag, b)
	}
}

// TestSandboxHelper is the sandboxed side of TestSandboxKilled: it makes
// what a killed suite would leave, says so, and waits to be killed.
func TestSandboxHelper(t *testing.T) {
	tag := os.Getenv(helperEnv)
	if tag == "" {
		t.Skip("the helper of TestSandboxKilled")
	}
	if !Sandboxed() {
		t.Fatal("the helper runs outside the sandbox")
	}
	if os.Getppid() != 1 {
		t.Fatalf("parent %d in the sandbox, want 1 (process 1 starts the tests)", os.Getppid())
	}
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	// A detached process, as banpush's sender is: its own session, no
	// parent to wait for it.
	sleeper := exec.Command("sh", "-c", "exec -a "+tag+" sleep 1000")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	sleeper.Process.Release()
	run("ip", "netns", "add", tag)
	run("ip", "netns", "exec", tag, "sh", "-c", "exec -a "+tag+"-netns sleep 1000 &")
	run("useradd", "--system", "--no-create-home", "--shell", "/bin/sh", tag)
	for _, p := range []string{"/etc/" + tag, "/tmp/" + tag} {
		if err := os.WriteFile(p, []byte(tag), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Seen from inside, all of it is there.
	if _, err := user.Lookup(tag); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %s: pid %d, account, netns, /etc and /tmp files, 2 sleepers\n", tag, os.Getpid())
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}

// processesWith lists the processes of the machine whose command line
// contains tag.
func processesWith(tag string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), tag) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
