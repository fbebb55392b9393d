package clidoc

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// Page is what a manual page says beyond the model.
type Page struct {
	Name    string // the program, lower case
	Section string // "1"
	Date    string // of the release, YYYY-MM-DD
	Source  string // "banpush 1.2.3"
	Title   string // the page's one-line description, for NAME
	// Sections come after the commands: EXIT STATUS, FILES, SEE ALSO...
	// Their text follows the same rules as help texts (see Man).
	Sections []Section
}

// Section is a titled section of a manual page.
type Section struct {
	Title string
	Text  string
	// Items, when set, are rendered as a list of term and text after
	// Text (an exit status and its meaning, a file and its use).
	Items [][2]string
}

// Man writes app's manual page in the man(7) macros. Help texts become
// paragraphs at blank lines; a line that starts with a space or a tab is
// kept as it is (an example), as --help keeps it.
func Man(w io.Writer, app *kong.Application, p Page) error {
	b := bufio.NewWriter(w)
	name := strings.ToUpper(p.Name)
	fmt.Fprintf(b, ".TH %s %s %s %s %s\n", name, p.Section, quote(p.Date), quote(p.Source), quote("User Commands"))
	// Flags, paths and variable names must not be hyphenated or spread.
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(b, "%s \\- %s\n", esc(p.Name), esc(p.Title))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(b, ".B %s\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]\n", esc(p.Name))
	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(b, app.Help, app.Detail)
	cmds := commands(app)
	if len(cmds[0].flags) > 0 {
		b.WriteString(".SH GLOBAL OPTIONS\n")
		flags(b, cmds[0].flags)
	}
	b.WriteString(".SH COMMANDS\n")
	for _, c := range cmds[1:] {
		fmt.Fprintf(b, ".SS %s\n", quote(p.Name+" "+strings.Join(c.path, " ")+usage(c)))
		paragraphs(b, c.node.Help, c.node.Detail)
		flags(b, c.flags)
	}
	if env := environment(cmds); len(env) > 0 {
		b.WriteString(".SH ENVIRONMENT\n")
		items(b, env)
	}
	for _, s := range p.Sections {
		fmt.Fprintf(b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		text(b, s.Text)
		items(b, s.Items)
	}
	return b.Flush()
}

// usage is what follows a command's name in its heading: its arguments.
func usage(c command) string {
	var s strings.Builder
	if len(c.flags) > 0 {
		s.WriteString(" [options]")
	}
	for _, a := range c.node.Positional {
		s.WriteString(" " + a.Summary())
	}
	if len(c.subs) > 0 {
		s.WriteString(" <command>")
	}
	return s.String()
}

// flags writes one tagged paragraph per flag.
func flags(b *bufio.Writer, fs []*kong.Flag) {
	for _, f := range fs {
		b.WriteString(".TP\n")
		term := "\\fB\\-\\-" + esc(f.Name) + "\\fR"
		if f.Short != 0 {
			term = "\\fB\\-" + esc(string(f.Short)) + "\\fR, " + term
		}
		if takesValue(f) {
			term += "=\\fI" + esc(f.FormatPlaceHolder()) + "\\fR"
		}
		b.WriteString(term + "\n")
		help := f.Help
		if vs := enum(f); len(vs) > 0 && !strings.Contains(help, vs[0]) {
			help += " One of: " + strings.Join(vs, ", ") + "."
		}
		if f.HasDefault && f.Default != "" && !f.IsBool() {
			help += " Default: " + f.Default + "."
		}
		if len(f.Envs) > 0 {
			help += " Environment: " + strings.Join(f.Envs, ", ") + "."
		}
		line(b, help)
	}
}

// environment lists every environment variable a visible flag reads.
func environment(cmds []command) [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	for _, c := range cmds {
		for _, f := range c.flags {
			for _, e := range f.Envs {
				if !seen[e] {
					seen[e] = true
					out = append(out, [2]string{e, "--" + f.Name + ": " + firstLine(f.Help)})
				}
			}
		}
	}
	return out
}

// items writes a list of terms and their text.
func items(b *bufio.Writer, is [][2]string) {
	for _, it := range is {
		b.WriteString(".TP\n")
		b.WriteString("\\fB" + esc(it[0]) + "\\fR\n")
		line(b, it[1])
	}
}

// paragraphs writes texts one after the other, a paragraph break between
// them.
func paragraphs(b *bufio.Writer, texts ...string) {
	first := true
	for _, t := range texts {
		if strings.TrimSpace(t) == "" {
			continue
		}
		if !first {
			b.WriteString(".PP\n")
		}
		first = false
		text(b, t)
	}
}

// text writes a help text: paragraphs at blank lines, and lines that start
// with blanks kept as they are, unfilled.
func text(b *bufio.Writer, s string) {
	s = strings.Trim(s, "\n")
	if strings.TrimSpace(s) == "" {
		return
	}
	for i, para := range strings.Split(s, "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		pre := false
		for _, l := range strings.Split(para, "\n") {
			indented := strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
			switch {
			case indented && !pre:
				b.WriteString(".nf\n")
				pre = true
			case !indented && pre:
				b.WriteString(".fi\n")
				pre = false
			}
			line(b, l)
		}
		if pre {
			b.WriteString(".fi\n")
		}
	}
}

// line writes one line of text.
func line(b *bufio.Writer, s string) {
	s = esc(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") || strings.TrimSpace(s) == "" {
		s = "\\&" + s
	}
	b.WriteString(s + "\n")
}

// esc escapes text for roff: backslashes, and hyphens, which would
// otherwise be typeset as dashes or hyphens that break in copying.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	return s
}

// quote is a macro argument, quoted, with its quotes doubled.
func quote(s string) string {
	return `"` + strings.ReplaceAll(esc(s), `"`, `""`) + `"`
}
