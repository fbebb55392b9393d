// Command banpush shares fail2ban bans between servers over SSH.
//
// This package is the thin layer: it parses arguments with kong, wires the
// library packages together, prints, and decides the exit code. Everything
// it prints follows the rules at the top of tui.go; every exit code is
// listed in exit.go.
package main

import (
	"errors"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/banpush/banpush/sshpush/f2b"
)

// version and commit are set at build time with
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse HEAD)"
//
// Without them, they come from the module's build information: a module
// version for 'go install ...@version', the VCS revision for a build in a
// checkout.
var version, commit = "", ""

// buildVersion is the version banpush reports, to people and to peers
// (the ping answer): the stamped or module version, or else "devel" and
// the commit, so that builds of different commits can be told apart.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if c := buildCommit(); c != "" {
		return "devel+" + shortCommit(c)
	}
	return "devel"
}

// buildCommit is the commit banpush was built from, "" if unknown, with
// ".dirty" when the checkout had changes.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = ".dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func shortCommit(c string) string {
	rev, dirty, _ := strings.Cut(c, ".")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty != "" {
		return rev + "." + dirty
	}
	return rev
}

// Globals are the flags every command takes.
type Globals struct {
	Inventory string `help:"Peers file, in ssh_config syntax." default:"/etc/banpush/peers" env:"BANPUSH_INVENTORY" type:"path" placeholder:"FILE"`
	Spool     string `help:"Spool directory for queued bans and sender state." default:"/var/spool/banpush" env:"BANPUSH_SPOOL" type:"path" placeholder:"DIR"`
	Self      string `help:"The peer of the inventory that is this host, which is never sent to, so that one inventory serves every host (default: this host's short hostname; else a peer whose HostName is an address of this host)." env:"BANPUSH_SELF" placeholder:"NAME"`

	Fail2banSocket string `name:"fail2ban-socket" help:"Socket of the local fail2ban server, for every command that asks it something (fail2ban-client -s)." default:"${fail2ban_socket}" env:"BANPUSH_FAIL2BAN_SOCKET" type:"path" placeholder:"PATH"`
}

// DeliveryFlags are the flags of the commands that deliver: push, flush
// and the background sender.
type DeliveryFlags struct {
	MaxAge time.Duration `help:"Drop queued bans older than this instead of delivering them." default:"24h" env:"BANPUSH_MAX_AGE" placeholder:"DURATION"`
}

// senderArgs renders the globals, the send command and the delivery flags
// as the arguments of a background sender: push and flush start one with
// them (sender.Kick). They parse back to the same values
// (TestSenderArgsRoundTrip), so that a renamed flag fails a test, not
// every push.
func (g *Globals) senderArgs(d DeliveryFlags) []string {
	args := []string{"--inventory", g.Inventory, "--spool", g.Spool}
	if g.Self != "" {
		args = append(args, "--self", g.Self)
	}
	return append(args, "send", "--max-age", d.MaxAge.String())
}

// CLI is the whole command line. One command, one struct, one file.
type CLI struct {
	Globals

	Push      PushCmd      `cmd:"" help:"Queue bans for every peer and return at once (fail2ban's actionban)."`
	Unban     UnbanCmd     `cmd:"" help:"Take bans back: unban here, cancel the queued bans and unban on every peer."`
	Flush     FlushCmd     `cmd:"" help:"Deliver everything queued now, in the foreground, and report per peer."`
	Sync      SyncCmd      `cmd:"" help:"Queue the bans fail2ban holds now for new or returning peers."`
	Status    StatusCmd    `cmd:"" help:"Show queued bans and the last delivery results per peer."`
	Peers     PeersCmd     `cmd:"" help:"List, add, remove, check and trust the peers in the inventory."`
	Receive   ReceiveCmd   `cmd:"" help:"Receive bans from a peer (run by sshd as a forced command)."`
	Authorize AuthorizeCmd `cmd:"" help:"Print the authorized_keys line that lets a peer push bans here."`
	Doctor    DoctorCmd    `cmd:"" help:"Check this host's setup as a pusher and as a receiver; say what to fix."`
	Send      SendCmd      `cmd:"" hidden:"" help:"The background sender that push starts."`
	Version   VersionCmd   `cmd:"" help:"Print banpush's version."`

	Completion CompletionCmd `cmd:"" help:"Print a completion script for bash, zsh or fish."`
	Man        ManCmd        `cmd:"" hidden:"" help:"Print the manual page, banpush(1), in the man(7) macros."`

	ApplyUnbans    ApplyUnbansCmd    `cmd:"" name:"apply-unbans" help:"Lift in the local fail2ban the bans that peers took back (run as root, by a systemd path unit)."`
	SetupAccount   SetupAccountCmd   `cmd:"" name:"setup-account" help:"Make and mend, as root, the receiving account's ~/.ssh and its append-only received log."`
	ReportFailures ReportFailuresCmd `cmd:"" name:"report-failures" help:"Report every failure fail2ban sees to the fleet, which bans a brute force spread over its hosts (run as root, as a service)."`
	Firewall       FirewallCmd       `cmd:"" help:"Put the received bans into a kernel set in bulk, the fast path beside fail2ban's (run as root, as a service)."`
}

// Env is what commands may touch of the outside world. Tests replace it.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Now    func() time.Time
	// StderrTerminal: a person is probably watching stderr, so progress
	// (retries) is worth showing.
	StderrTerminal bool
}

func main() {
	os.Exit(Main(os.Args[1:], &Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		Now:    time.Now,

		StderrTerminal: isTerminal(os.Stderr),
	}))
}

// isTerminal reports whether f is a character device, such as a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newParser builds the command-line parser for cli, writing help and
// usage to env's outputs. kong's exits (--help, usage errors) panic with
// an exitPanic, which Main recovers.
func newParser(cli *CLI, env *Env) *kong.Kong { return grammarParser(cli, env) }

// grammarParser builds the parser of a grammar: CLI, or one of the
// one-command grammars of quick.go.
func grammarParser(grammar any, env *Env) *kong.Kong {
	vars := kong.Vars{"version": buildVersion(), "fail2ban_socket": f2b.DefaultSocket, "fail2ban_config": f2b.DefaultConfig, "firewall_state": defaultFirewallState}
	for k, v := range receiveVars() {
		vars[k] = v
	}
	parser, err := kong.New(grammar,
		kong.Name("banpush"),
		kong.Description("Share fail2ban bans between servers over SSH.\n\n"+
			"fail2ban runs 'banpush push' when it bans an address; banpush queues the ban and a "+
			"background sender delivers it to every peer in the inventory, where 'banpush receive' "+
			"appends it to a log that the peer's own fail2ban watches."),
		kong.Writers(env.Stdout, env.Stderr),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.ValueFormatter(helpValue),
		kong.Exit(func(c int) { panic(exitPanic(c)) }),
		vars,
	)
	if err != nil {
		panic(err) // the grammar is static: this is a programming error
	}
	return parser
}

// Main runs banpush with args and returns its exit code.
func Main(args []string, env *Env) (code int) {
	if code, ok := runQuick(args, env); ok {
		return code
	}
	var cli CLI
	parser := newParser(&cli, env)
	defer func() {
		// kong calls Exit for --help and for usage errors.
		if r := recover(); r != nil {
			c, ok := r.(exitPanic)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			printError(env.Stderr, err)
			if pe.Context != nil && pe.Context.Selected() != nil {
				printHint(env.Stderr, "run 'banpush "+pe.Context.Selected().Path()+" --help' for usage")
			} else {
				printHint(env.Stderr, "run 'banpush --help' for usage")
			}
			return exitUsage
		}
		printError(env.Stderr, err)
		return exitUsage
	}
	err = kctx.Run(env, &cli.Globals)
	return report(env.Stderr, err)
}

type exitPanic int

// helpValue is a flag's help with its environment variable, as kong
// writes it, and its default value, which kong leaves out: paths such as
// the spool's are worth seeing in --help.
func helpValue(v *kong.Value) string {
	s := kong.DefaultHelpValueFormatter(v)
	if v.Default == "" || v.IsBool() || strings.Contains(v.OrigHelp, "default") {
		return s
	}
	d := "(default: " + v.Default + ")"
	if strings.HasSuffix(s, ".") {
		return s[:len(s)-1] + " " + d + "."
	}
	return s + " " + d
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints banpush's version, and the commit and Go version it was
// built with.
func (c *VersionCmd) Run(env *Env) error {
	line := "banpush " + buildVersion()
	if c := buildCommit(); c != "" {
		line += " commit " + c
	}
	_, err := io.WriteString(env.Stdout, line+" "+runtime.Version()+"\n")
	return err
}
