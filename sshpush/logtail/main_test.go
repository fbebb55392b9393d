package logtail

import (
	"testing"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// TestMain runs the tests in testenv's sandbox when it can (as root), so
// that nothing they start or write outlives the test binary.
func TestMain(m *testing.M) { testenv.Main(m) }
