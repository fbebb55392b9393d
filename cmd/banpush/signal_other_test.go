//go:build !linux

package main

import "syscall"

// signalIf sends sig to pid if still() holds (without pidfd, a process id
// reused in between cannot be ruled out).
func signalIf(pid int, still func() bool, sig syscall.Signal) bool {
	return still() && syscall.Kill(pid, sig) == nil
}
