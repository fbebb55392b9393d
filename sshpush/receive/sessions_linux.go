package receive

import "golang.org/x/sys/unix"

// setlk is the command that takes a session slot's lock. On Linux it is an
// open file description lock: it belongs to the open file, so that two
// slots in one process are distinct (which tests rely on).
const setlk = unix.F_OFD_SETLK
