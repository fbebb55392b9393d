//go:build !linux

package testenv

// OptOutEnv, set to "off", runs the tests of a root user without a sandbox.
const OptOutEnv = "BANPUSH_TEST_SANDBOX"

// Sandbox runs no sandbox outside Linux: the caller runs the tests itself.
func Sandbox() (code int, ran bool) { return 0, false }

// Sandboxed reports whether the tests run inside the sandbox: never, here.
func Sandboxed() bool { return false }
