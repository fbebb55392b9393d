package clidoc

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// Bash writes a bash completion script for app: commands and subcommands,
// the flags of the command being typed and of its parents, the values of
// flags with a closed list, and file names for flags that take a path.
func Bash(w io.Writer, app *kong.Application) error {
	b := bufio.NewWriter(w)
	name := app.Name
	fn := "_" + ident(name)
	cmds := commands(app)
	fmt.Fprintf(b, "# bash completion for %s, from '%s completion bash'\n\n", name, name)
	bashBody(b, fn, cmds)
	fmt.Fprintf(b, "complete -F %s %s\n", fn, name)
	return b.Flush()
}

// Zsh writes a zsh completion function for app: the bash one, through
// zsh's bashcompinit.
func Zsh(w io.Writer, app *kong.Application) error {
	b := bufio.NewWriter(w)
	name := app.Name
	fn := "_" + ident(name) + "_bash"
	fmt.Fprintf(b, "#compdef %s\n# zsh completion for %s, from '%s completion zsh'\n\n", name, name, name)
	b.WriteString("autoload -U +X bashcompinit && bashcompinit\n\n")
	bashBody(b, fn, commands(app))
	fmt.Fprintf(b, "complete -F %s %s\n", fn, name)
	return b.Flush()
}

// bashBody writes the completion function fn and its tables.
func bashBody(b *bufio.Writer, fn string, cmds []command) {
	bashTables(b, fn, cmds)
	bashFunc(b, fn)
}

// bashTables writes the functions that hold the model: subcommands and
// flags per command path, the flags that take a value, and their values.
func bashTables(b *bufio.Writer, fn string, cmds []command) {
	fmt.Fprintf(b, "%s_subs() {\n\tcase $1 in\n", fn)
	for _, c := range cmds {
		if len(c.subs) > 0 {
			fmt.Fprintf(b, "\t%s) echo %s ;;\n", shq(strings.Join(c.path, " ")), shq(strings.Join(c.subs, " ")))
		}
	}
	b.WriteString("\tesac\n}\n\n")
	fmt.Fprintf(b, "%s_flags() {\n\tcase $1 in\n", fn)
	for i, c := range cmds {
		fmt.Fprintf(b, "\t%s) echo %s ;;\n", shq(strings.Join(c.path, " ")), shq(strings.Join(flagWords(cmds, i), " ")))
	}
	b.WriteString("\tesac\n}\n\n")
	var values, paths []string
	enums := map[string][]string{}
	for _, c := range cmds {
		for _, f := range c.flags {
			if !takesValue(f) {
				continue
			}
			values = append(values, "--"+f.Name)
			if f.Short != 0 {
				values = append(values, "-"+string(f.Short))
			}
			if isPath(f) {
				paths = append(paths, "--"+f.Name)
			}
			if vs := enum(f); len(vs) > 0 {
				enums["--"+f.Name] = vs
			}
		}
	}
	fmt.Fprintf(b, "%s_takes() {\n\tcase $1 in\n", fn)
	if len(values) > 0 {
		fmt.Fprintf(b, "\t%s) return 0 ;;\n", strings.Join(uniq(values), " | "))
	}
	b.WriteString("\tesac\n\treturn 1\n}\n\n")
	fmt.Fprintf(b, "%s_value() {\n\tcase $1 in\n", fn)
	for _, f := range slices.Sorted(maps.Keys(enums)) {
		fmt.Fprintf(b, "\t%s) COMPREPLY=($(compgen -W %s -- \"$2\")) ;;\n", f, shq(strings.Join(enums[f], " ")))
	}
	if len(paths) > 0 {
		fmt.Fprintf(b, "\t%s) COMPREPLY=($(compgen -f -- \"$2\")) ;;\n", strings.Join(uniq(paths), " | "))
	}
	b.WriteString("\t*) COMPREPLY=() ;;\n\tesac\n}\n\n")
}

// bashFunc writes the completion function: it finds the command typed so
// far, skipping flags and their values, then offers what may come next.
func bashFunc(b *bufio.Writer, fn string) {
	fmt.Fprintf(b, `%[1]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local path= w i skip=0 sub
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if ((skip)); then
			skip=0
			continue
		fi
		case $w in
		--*=*) ;;
		-*) %[1]s_takes "$w" && skip=1 ;;
		*)
			for sub in $(%[1]s_subs "$path"); do
				if [[ $w == "$sub" ]]; then
					path=${path:+$path }$w
					break
				fi
			done
			;;
		esac
	done
	if ((COMP_CWORD > 1)) && [[ $prev == -* && $prev != *=* ]] && %[1]s_takes "$prev"; then
		%[1]s_value "$prev" "$cur"
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(%[1]s_flags "$path")" -- "$cur"))
	else
		COMPREPLY=($(compgen -W "$(%[1]s_subs "$path")" -- "$cur"))
	fi
}

`, fn)
}

// flagWords are the flags of cmds[i] and of its parents, as typed.
func flagWords(cmds []command, i int) []string {
	var out []string
	path := cmds[i].path
	for _, c := range cmds {
		if len(c.path) > len(path) || !slices.Equal(c.path, path[:len(c.path)]) {
			continue
		}
		for _, f := range c.flags {
			out = append(out, "--"+f.Name)
			if f.Short != 0 {
				out = append(out, "-"+string(f.Short))
			}
		}
	}
	return uniq(append(out, "--help"))
}

// Fish writes a fish completion script for app.
func Fish(w io.Writer, app *kong.Application) error {
	b := bufio.NewWriter(w)
	name := app.Name
	fmt.Fprintf(b, "# fish completion for %s, from '%s completion fish'\n\n", name, name)
	fmt.Fprintf(b, "complete -c %s -f\n", name)
	for _, c := range commands(app) {
		cond := "__fish_use_subcommand"
		if len(c.path) > 0 {
			cond = "__fish_seen_subcommand_from " + c.path[len(c.path)-1]
		}
		for _, ch := range c.node.Children {
			if ch.Type != kong.CommandNode || ch.Hidden {
				continue
			}
			when := cond
			if len(c.path) > 0 {
				when += "; and not __fish_seen_subcommand_from " + strings.Join(c.subs, " ")
			}
			fmt.Fprintf(b, "complete -c %s -n %s -a %s -d %s\n", name, fishq(when), fishq(ch.Name), fishq(firstLine(ch.Help)))
		}
		for _, f := range c.flags {
			fmt.Fprintf(b, "complete -c %s", name)
			if len(c.path) > 0 {
				fmt.Fprintf(b, " -n %s", fishq(cond))
			}
			fmt.Fprintf(b, " -l %s", f.Name)
			if f.Short != 0 {
				fmt.Fprintf(b, " -s %s", string(f.Short))
			}
			if takesValue(f) {
				b.WriteString(" -r")
				if vs := enum(f); len(vs) > 0 {
					fmt.Fprintf(b, " -a %s", fishq(strings.Join(vs, " ")))
				} else if isPath(f) {
					b.WriteString(" -F")
				}
			}
			fmt.Fprintf(b, " -d %s\n", fishq(firstLine(f.Help)))
		}
	}
	return b.Flush()
}

// ident makes a shell function name of a program name.
func ident(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// shq quotes s for sh, in single quotes.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishq quotes s for fish, in single quotes.
func fishq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
