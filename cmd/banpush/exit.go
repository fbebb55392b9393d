package main

import "github.com/banpush/banpush/sshpush/wire"

// Exit codes. This is the only place they are decided; docs/reference.md lists
// them under "Exit codes". The receiver's codes are part of the wire
// protocol (package wire): they follow sysexits.h so that a pushing peer
// can tell "fix the request" from "try again later", and the other
// commands reuse them with the same meaning.
const (
	exitOK      = 0                // success
	exitFailure = 1                // an error that is none of the below
	exitPeers   = 3                // push --wait, unban --wait, flush, peers check, peers trust, peers ignoreip: at least one peer failed
	exitDoctor  = 4                // doctor: at least one check failed
	exitRequest = wire.ExitRequest // receive: unknown or missing request (EX_USAGE)
	exitData    = wire.ExitData    // receive: batch refused whole (too large); push, unban: an address refused (EX_DATAERR)
	exitTemp    = wire.ExitTemp    // receive: log busy, nothing written; flush, --wait: the sender lock not had; apply-unbans, report-failures: try again (EX_TEMPFAIL)
	exitConfig  = wire.ExitConfig  // bad configuration: inventory file, receive arguments (EX_CONFIG)
	exitUsage   = 80               // command-line usage error (kong's convention)
)

// exitCannotWrite (EX_CANTCREAT): receive: the log or a file beside it
// cannot be written; nothing written, a person must fix the receiving
// host. Part of the wire protocol like the receiver's other codes.
const exitCannotWrite = wire.ExitCannotWrite

// exitUnavailable (EX_UNAVAILABLE): sync, apply-unbans: the local
// fail2ban does not answer, or fail2ban-client is missing; nothing was
// queued or applied. report-failures: where fail2ban logs cannot be
// learned, or is no file.
const exitUnavailable = 69
