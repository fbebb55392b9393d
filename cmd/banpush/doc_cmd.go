package main

import (
	"strconv"
	"time"

	"github.com/alecthomas/kong"
	"github.com/banpush/banpush/cmd/banpush/clidoc"
)

// ManCmd prints banpush(1), the manual page, from the same model that
// parses the command line: the packages install what it prints.
type ManCmd struct{}

// Help explains the command.
func (c *ManCmd) Help() string {
	return `man prints banpush's manual page, banpush(1), in the man(7) macros: every
command with its --help text and flags, the environment, the exit statuses,
the files. The packages install it; to read it from a build:

    banpush man | man -l -`
}

// Run prints the page.
func (c *ManCmd) Run(kctx *kong.Context, env *Env) error {
	// A package build dates the page by its commit, for the same bytes
	// from the same source (reproducible-builds.org's variable).
	when := env.Now()
	if sec, err := strconv.ParseInt(env.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		when = time.Unix(sec, 0)
	}
	date := when.UTC().Format(time.DateOnly)
	return clidoc.Man(env.Stdout, kctx.Model, clidoc.Page{
		Name:    "banpush",
		Section: "1",
		Date:    date,
		Source:  "banpush " + buildVersion(),
		Title:   "share fail2ban bans between servers over SSH",
		Sections: []clidoc.Section{
			{Title: "Exit status", Text: "Every command exits with one of these; scripts may rely on them.", Items: exitItems()},
			{Title: "Files", Items: [][2]string{
				{"/etc/banpush/peers", "the inventory: the peers, in ssh_config syntax (banpush peers list, add, remove)"},
				{"/etc/banpush/id_ed25519", "the key the sender logs in to peers with (and its certificate, id_ed25519-cert.pub, in a certificate fleet)"},
				{"/var/spool/banpush", "the spool: the journal of queued bans, a cursor per peer, the sender's lock, log (sender.log) and state"},
				{"/var/log/banpush/received.log", "what peers sent, one line per address, for the banpush filters of fail2ban"},
				{"/etc/fail2ban/action.d/banpush.conf", "the action that runs 'banpush push' when a jail bans"},
				{"/etc/fail2ban/filter.d/banpush.conf, banpush-quorum.conf", "the filters of the received log"},
				{"/etc/fail2ban/jail.d/banpush.conf", "the jails that ban what peers sent"},
			}},
			{Title: "See also", Text: "fail2ban-client(1), sshd(8), ssh_config(5), ssh-keygen(1), and the manual in the docs/ directory of banpush's source."},
		},
	})
}

// CompletionCmd prints a shell completion script.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Help explains the command.
func (c *CompletionCmd) Help() string {
	return `completion prints a completion script for bash, zsh or fish: commands,
subcommands, flags, the values of flags with a fixed list, and file names
where a flag takes a path. The packages install them where each shell looks;
to try one from a build:

    source <(banpush completion bash)`
}

// Run prints the script.
func (c *CompletionCmd) Run(kctx *kong.Context, env *Env) error {
	switch c.Shell {
	case "zsh":
		return clidoc.Zsh(env.Stdout, kctx.Model)
	case "fish":
		return clidoc.Fish(env.Stdout, kctx.Model)
	}
	return clidoc.Bash(env.Stdout, kctx.Model)
}

// exitItems are the exit statuses for the manual page, from exit.go's
// constants (TestExitStatusesDocumented keeps the list whole).
func exitItems() [][2]string {
	items := []struct {
		code int
		what string
	}{
		{exitOK, "success"},
		{exitFailure, "an error that is none of the below"},
		{exitPeers, "push --wait, unban --wait, flush, peers check: at least one peer failed, and its bans (and unbans) stay queued; peers trust: a peer could not be reached; peers ignoreip: a HostName does not resolve"},
		{exitDoctor, "doctor: at least one check failed"},
		{exitRequest, "receive: an unknown or missing request (EX_USAGE)"},
		{exitData, "receive: the batch refused whole (too large); push, unban: an address refused (EX_DATAERR)"},
		{exitUnavailable, "sync, apply-unbans: the local fail2ban does not answer, or fail2ban-client is missing (EX_UNAVAILABLE)"},
		{exitCannotWrite, "receive: the log or a file beside it cannot be written; nothing written (EX_CANTCREAT)"},
		{exitTemp, "receive: the log is busy, nothing written: try again later; flush, push --wait, unban --wait: the sender lock was not had within --timeout; apply-unbans: another run held the cursor, or fail2ban-client failed: the next run applies what is pending (EX_TEMPFAIL)"},
		{exitConfig, "bad configuration: the inventory, the receiver's arguments (EX_CONFIG)"},
		{exitUsage, "a command-line usage error"},
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		out[i] = [2]string{strconv.Itoa(it.code), it.what}
	}
	return out
}
