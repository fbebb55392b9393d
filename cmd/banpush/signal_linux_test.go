package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// signalIf sends sig to pid if still() holds once pid is pinned by a
// pidfd, so that a process id reused in between is never signalled.
func signalIf(pid int, still func() bool, sig syscall.Signal) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return still() && unix.PidfdSendSignal(fd, sig, nil, 0) == nil
}
