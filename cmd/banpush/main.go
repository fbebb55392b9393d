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
	"runtime/debug"
	"time"

	"github.com/alecthomas/kong"
)

// version is set with -ldflags "-X main.version=..."; otherwise it comes from
// the module's build information.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Globals are the flags every command takes.
type Globals struct {
	Inventory string        `help:"Peers file, in ssh_config syntax." default:"/etc/banpush/peers" env:"BANPUSH_INVENTORY" type:"path" placeholder:"FILE"`
	Spool     string        `help:"Spool directory for queued bans and sender state." default:"/var/spool/banpush" env:"BANPUSH_SPOOL" type:"path" placeholder:"DIR"`
	MaxAge    time.Duration `help:"Drop queued bans older than this instead of delivering them." default:"24h" env:"BANPUSH_MAX_AGE" placeholder:"DURATION"`
	Self      string        `help:"The peer of the inventory that is this host, which is never sent to, so that one inventory serves every host (default: this host's short hostname; else a peer whose HostName is an address of this host)." env:"BANPUSH_SELF" placeholder:"NAME"`
}

// senderArgs renders the globals, and the send command, as the arguments of
// a background sender: push and flush start one with them (sender.Kick).
// They parse back to the same globals (TestSenderArgsRoundTrip), so that a
// renamed flag fails a test, not every push.
func (g *Globals) senderArgs() []string {
	args := []string{"--inventory", g.Inventory, "--spool", g.Spool, "--max-age", g.MaxAge.String()}
	if g.Self != "" {
		args = append(args, "--self", g.Self)
	}
	return append(args, "send")
}

// CLI is the whole command line. One command, one struct, one file.
type CLI struct {
	Globals

	Push      PushCmd      `cmd:"" help:"Queue bans for every peer and return at once (fail2ban's actionban)."`
	Flush     FlushCmd     `cmd:"" help:"Deliver everything queued now, in the foreground, and report per peer."`
	Status    StatusCmd    `cmd:"" help:"Show queued bans and the last delivery results per peer."`
	Peers     PeersCmd     `cmd:"" help:"List, add, remove, check and trust the peers in the inventory."`
	Receive   ReceiveCmd   `cmd:"" help:"Receive bans from a peer (run by sshd as a forced command)."`
	Authorize AuthorizeCmd `cmd:"" help:"Print the authorized_keys line that lets a peer push bans here."`
	Send      SendCmd      `cmd:"" hidden:"" help:"The background sender that push starts."`
	Version   VersionCmd   `cmd:"" help:"Print banpush's version."`
}

// Env is what commands may touch of the outside world. Tests replace it.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Now    func() time.Time
}

func main() {
	os.Exit(Main(os.Args[1:], &Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		Now:    time.Now,
	}))
}

// newParser builds the command-line parser for cli, writing help and
// usage to env's outputs. kong's exits (--help, usage errors) panic with
// an exitPanic, which Main recovers.
func newParser(cli *CLI, env *Env) *kong.Kong {
	vars := kong.Vars{"version": buildVersion()}
	for k, v := range receiveVars() {
		vars[k] = v
	}
	parser, err := kong.New(cli,
		kong.Name("banpush"),
		kong.Description("Share fail2ban bans between servers over SSH.\n\n"+
			"fail2ban runs 'banpush push' when it bans an address; banpush queues the ban and a "+
			"background sender delivers it to every peer in the inventory, where 'banpush receive' "+
			"appends it to a log that the peer's own fail2ban watches."),
		kong.Writers(env.Stdout, env.Stderr),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
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

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints banpush's version.
func (c *VersionCmd) Run(env *Env) error {
	_, err := io.WriteString(env.Stdout, "banpush "+buildVersion()+"\n")
	return err
}
