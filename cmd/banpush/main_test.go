package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain runs the tests in testenv's sandbox when it can (as root), lets
// testscript run "banpush" as this test binary, and removes the banpush
// binary that integration tests build, once they are done.
func TestMain(m *testing.M) {
	if code, ran := testenv.Sandbox(); ran {
		os.Exit(code)
	}
	testscript.Main(cleanupM{m}, map[string]func(){
		"banpush": func() {
			os.Exit(Main(os.Args[1:], &Env{
				Stdin:  os.Stdin,
				Stdout: os.Stdout,
				Stderr: os.Stderr,
				Getenv: os.Getenv,
				Now:    time.Now,
			}))
		},
	})
}

// cleanupM runs the tests, then removes what builtBanpush built.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	code := c.m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

// built is the banpush binary the integration tests run: a plain build, not
// this test binary. Under -race the test binary takes about a second to
// start, far too slow for sshd's forced command and for thousands of pushes.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// builtBanpush builds banpush once per test run and returns its path.
func builtBanpush(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "banpush-test-bin")
		if built.err != nil {
			return
		}
		// The receiving account runs it too (sshdtest.LoginAccount).
		if built.err = os.Chmod(built.dir, 0o755); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "banpush")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// TestScripts runs every testdata/*.txtar script. Scripts start with no
// BANPUSH_* variables set; each sets what it needs.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("BANPUSH_INVENTORY", e.WorkDir+"/peers")
			e.Setenv("BANPUSH_SPOOL", e.WorkDir+"/spool")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
		},
	})
}

// cmdStatus is "status N PROGRAM ARGS...": run PROGRAM like exec does and
// require exit status N. Exit codes are part of banpush's interface.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: bad exit status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("status: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}
