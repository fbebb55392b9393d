//go:build !linux

package sender

import (
	"errors"

	"github.com/banpush/banpush/sshpush/deliver"
)

// watch has no kernel notification to use outside Linux: the caller falls
// back to deliver's polling of the journal (every 250 ms while lingering).
func watch(dir string, n *deliver.Notifier) (stop func(), err error) {
	return nil, errors.New("sender: no journal watcher on this system")
}
