package inventory

import (
	"os"
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestMain runs the tests in testenv's sandbox when it can (as root), so
// that nothing they start or write outlives the test binary.
func TestMain(m *testing.M) {
	if code, ran := testenv.Sandbox(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
