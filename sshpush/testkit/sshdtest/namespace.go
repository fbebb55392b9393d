package sshdtest

// BindMounted returns a Config.Exec that starts sshd in a mount namespace
// of its own (unshare(1), from util-linux) in which the directory source is
// bind-mounted on the directory target. sshd and everything it runs, such
// as a forced command, see source's files at target; the rest of the
// machine, and every other sshd, see target unchanged. Servers that must
// share one configuration byte for byte (a path in authorized_keys) yet
// keep apart what they write there each get their own source. The mount
// ends with the namespace, when sshd and its children have exited.
//
// It needs root (testenv.Root) and a target that exists.
func BindMounted(source, target string) []string {
	return []string{
		"unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", `mount --bind -- "$1" "$2" && shift 2 && exec "$@"`, "sh", source, target,
	}
}
