package main

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// runDoc runs banpush with args in-process and returns its stdout.
func runDoc(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errs, Getenv: func(string) string { return "" }, Now: time.Now}
	if code := Main(args, env); code != 0 {
		t.Fatalf("banpush %s: exit %d\n%s", strings.Join(args, " "), code, errs.String())
	}
	return out.String()
}

// cliModel is banpush's kong model, as the commands see it.
func cliModel(t *testing.T) *kong.Application {
	t.Helper()
	var cli CLI
	return newParser(&cli, &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: os.Getenv, Now: time.Now}).Model
}

// visible lists the model's visible commands by path ("peers add"), with
// the flags one may type after each (its own and its parents').
func visible(app *kong.Application) map[string][]string {
	out := map[string][]string{}
	var walk func(n *kong.Node, path string, inherited []string)
	walk = func(n *kong.Node, path string, inherited []string) {
		flags := slices.Clone(inherited)
		for _, f := range n.Flags {
			if !f.Hidden {
				flags = append(flags, "--"+f.Name)
			}
		}
		out[path] = flags
		for _, c := range n.Children {
			if c.Type == kong.CommandNode && !c.Hidden {
				walk(c, strings.TrimSpace(path+" "+c.Name), flags)
			}
		}
	}
	walk(app.Node, "", nil)
	return out
}

// TestManPage: banpush(1) renders without a warning from groff, and names
// every visible command, every flag and every exit status.
func TestManPage(t *testing.T) {
	page := runDoc(t, "man")
	for path, flags := range visible(cliModel(t)) {
		want := strings.ReplaceAll("banpush "+path, "-", `\-`)
		if !strings.Contains(page, want) {
			t.Errorf("the page does not name %q", "banpush "+path)
		}
		for _, f := range flags {
			if !strings.Contains(page, `\fB`+strings.ReplaceAll(f, "-", `\-`)+`\fR`) {
				t.Errorf("the page does not list %s (of %q)", f, path)
			}
		}
	}
	for _, it := range exitItems() {
		if !strings.Contains(page, `\fB`+it[0]+`\fR`) {
			t.Errorf("the page does not list exit status %s", it[0])
		}
	}
	testenv.Need(t, testenv.Command("groff", "groff-base"))
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff -ww: %v\n%s", err, out)
	}
}

// TestExitStatusesDocumented: every exit code exit.go defines is on the
// manual page's list (doc_cmd.go's exitItems).
func TestExitStatusesDocumented(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "exit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc_cmd.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		if vs, ok := node.(*ast.ValueSpec); ok {
			for _, name := range vs.Names {
				if strings.HasPrefix(name.Name, "exit") {
					n++
					if !strings.Contains(string(doc), "{"+name.Name+", ") {
						t.Errorf("exit.go defines %s, which the manual page's exit statuses leave out", name.Name)
					}
				}
			}
		}
		return true
	})
	if n < 10 {
		t.Errorf("found %d exit codes in exit.go, want at least 10: the test no longer reads it", n)
	}
}

// TestCompletionBash: the bash script offers, after each visible command,
// its subcommands and (after a dash) its flags, skipping flags' values on
// the way.
func TestCompletionBash(t *testing.T) {
	testenv.Need(t, testenv.Command("bash", "bash"))
	script := filepath.Join(t.TempDir(), "banpush.bash")
	writeFile(t, script, runDoc(t, "completion", "bash"))
	app := cliModel(t)
	for path, flags := range visible(app) {
		words := append([]string{"banpush", "--spool", "/x"}, strings.Fields(path)...)
		if subs := subcommands(app, path); len(subs) > 0 {
			if got := bashComplete(t, script, append(words, "")); !slices.Equal(got, subs) {
				t.Errorf("%q: offered %v, want the subcommands %v", path, got, subs)
			}
		}
		got := bashComplete(t, script, append(words, "--"))
		for _, f := range flags {
			if !slices.Contains(got, f) {
				t.Errorf("%q: --<TAB> offered %v, not %s", path, got, f)
			}
		}
	}
	if got := bashComplete(t, script, []string{"banpush", "pe"}); !slices.Equal(got, []string{"peers"}) {
		t.Errorf("banpush pe<TAB>: %v, want [peers]", got)
	}
}

// subcommands are the visible subcommands of the command at path.
func subcommands(app *kong.Application, path string) []string {
	n := app.Node
	for _, w := range strings.Fields(path) {
		for _, c := range n.Children {
			if c.Name == w {
				n = c
			}
		}
	}
	var out []string
	for _, c := range n.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			out = append(out, c.Name)
		}
	}
	return out
}

// bashComplete runs the completion function on words, the last one being
// typed, and returns what it offers.
func bashComplete(t *testing.T, script string, words []string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		strconv.Itoa(len(words)-1) + "\n_banpush\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	out, err := exec.Command("bash", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// TestCompletionZsh: in a real interactive zsh (on a pseudo-terminal,
// through zsh/zpty), with compinit, the script completes a command and a
// subcommand at a TAB.
func TestCompletionZsh(t *testing.T) {
	testenv.Slow(t)
	testenv.Need(t, testenv.Command("zsh", "zsh"))
	dir := t.TempDir()
	script := filepath.Join(dir, "_banpush")
	writeFile(t, script, runDoc(t, "completion", "zsh"))
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// A banpush function stands in for the program and prints the words
	// it got once the line is entered; the driver reads until that line
	// has ended, however long the shell takes (the context bounds it);
	// the quotes keep the echo of the definition from matching ":END".
	// compinit writes no dump file (-D), and HOME is the test's own.
	driver := `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'autoload -U compinit && compinit -u -D; source ` + script + `; banpush() { print -r -- "ARGS:$*:E""ND"; }'
zpty -w -n z $'banpush pe\tch\t\n'
zpty -r -m z out '*:END*'
zpty -d z
print -r -- "$out"
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "zsh", "-f", "-c", driver)
	cmd.Env = privateHome(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ARGS:peers check") {
		t.Errorf("zsh completed 'banpush pe<TAB>ch<TAB>' into something else than 'banpush peers check':\n%q", out)
	}
}

// TestCompletionFish: fish completes commands, subcommands and flags.
func TestCompletionFish(t *testing.T) {
	testenv.Need(t, testenv.Command("fish", "fish"))
	script := filepath.Join(t.TempDir(), "banpush.fish")
	writeFile(t, script, runDoc(t, "completion", "fish"))
	for _, tt := range []struct{ line, want string }{
		{"banpush pe", "peers"},
		{"banpush peers ch", "check"},
		{"banpush push --ja", "--jail"},
	} {
		cmd := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C '"+tt.line+"'")
		cmd.Env = privateHome(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			w, _, _ := strings.Cut(l, "\t")
			got = append(got, w)
		}
		if !slices.Contains(got, tt.want) {
			t.Errorf("fish: %q completes to %v, want %s among them", tt.line, got, tt.want)
		}
	}
}

// privateHome is the environment with HOME, ZDOTDIR and the XDG
// directories in a temporary directory: a shell run by a test writes
// nothing in the user's own.
func privateHome(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "ZDOTDIR="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_DATA_HOME="+filepath.Join(home, ".local", "share"))
}
