//go:build !linux

package sender

// closeInherited marks every descriptor above stderr close-on-exec (see the
// Linux version).
func closeInherited() { closeInheritedFrom("/dev/fd") }
