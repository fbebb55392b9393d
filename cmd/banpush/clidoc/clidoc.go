// Package clidoc renders a kong command line's manual page (roff, for
// man(1)) and its shell completions (bash, zsh, fish) from the same model
// that parses the command line and prints --help, so that the three never
// disagree. Hidden commands and flags are left out, as --help leaves them
// out.
//
// What it trusts: the model it is given, which is the program's own
// static grammar. It never prints but to the writer it is given.
package clidoc

import (
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// command is one command of the model, flattened for the renderers.
type command struct {
	path  []string // words after the program's name; none for the program itself
	node  *kong.Node
	flags []*kong.Flag // its own visible flags, without those of its parents
	subs  []string     // the names of its visible subcommands
}

// commands lists the model's visible commands, the program first, each
// parent before its children, in the model's order.
func commands(app *kong.Application) []command {
	var out []command
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		c := command{path: path, node: n, flags: visibleFlags(n)}
		for _, ch := range n.Children {
			if ch.Type == kong.CommandNode && !ch.Hidden {
				c.subs = append(c.subs, ch.Name)
			}
		}
		out = append(out, c)
		for _, ch := range n.Children {
			if ch.Type == kong.CommandNode && !ch.Hidden {
				walk(ch, append(slices.Clone(path), ch.Name))
			}
		}
	}
	walk(app.Node, nil)
	return out
}

// visibleFlags are n's own flags that --help shows.
func visibleFlags(n *kong.Node) []*kong.Flag {
	var out []*kong.Flag
	for _, f := range n.Flags {
		if !f.Hidden {
			out = append(out, f)
		}
	}
	return out
}

// takesValue reports whether a flag is followed by a value.
func takesValue(f *kong.Flag) bool { return !f.IsBool() && !f.IsCounter() }

// enum is the flag's allowed values, if it has a closed list.
func enum(f *kong.Flag) []string {
	if f.Enum == "" {
		return nil
	}
	var out []string
	for _, v := range strings.Split(f.Enum, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// isPath reports whether the flag's value is a file or directory.
func isPath(f *kong.Flag) bool {
	if f.Tag != nil && (f.Tag.Type == "path" || f.Tag.Type == "existingfile" || f.Tag.Type == "existingdir") {
		return true
	}
	switch f.PlaceHolder {
	case "FILE", "DIR", "PATH", "LOG", "DIRECTORY":
		return true
	}
	return false
}

// firstLine is the first sentence-line of a help text, for a summary.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
