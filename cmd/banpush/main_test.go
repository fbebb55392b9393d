package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run "banpush" as this test binary.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
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
