package authkeys

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Option returns the value of the option name="..." in an authorized_keys
// line's options (as ssh.ParseAuthorizedKey returns them), unquoted as sshd
// does.
func Option(opts []string, name string) (string, bool) {
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, name+"=")
		if ok && len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), true
		}
	}
	return "", false
}

// SplitCommand splits a forced command into words as the account's shell
// would, for the subset of shell syntax 'banpush authorize' writes: plain
// words, single quotes, double quotes and backslashes. Anything the shell
// would expand or treat as an operator is an error: such a line is not one
// banpush wrote, and what it runs cannot be known without running it.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // inside a word
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$', '`':
					return nil, errors.New("shell expansion inside double quotes")
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
						i++
					}
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			in = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			w.WriteByte(s[i])
			in = true
		case strings.IndexByte("$`;|&<>()*?[]{}~#!\n\r", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q banpush does not write", c)
		case c < 0x20 || c > 0x7e:
			return nil, errors.New("a byte that is not printable ASCII")
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}

// Command is the forced command of one key line of an authorized_keys
// file: its words, as the account's shell splits them (SplitCommand), or
// why they could not be read.
type Command struct {
	Options []string // the line's options, as ssh.ParseAuthorizedKey returns them
	Argv    []string
	Err     error
}

// Commands reads the key lines of an authorized_keys file that have a
// command= option, at most max of them (and the file's first MaxFileSize
// bytes), and returns each one's command. It stops at the first line it
// cannot parse as a key line.
func Commands(content []byte, max int) []Command {
	if len(content) > MaxFileSize {
		content = content[:MaxFileSize]
	}
	var out []Command
	rest := content
	for n := 0; n < max && len(rest) > 0; n++ {
		_, _, opts, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		rest = next
		cmd, ok := Option(opts, "command")
		if !ok {
			continue
		}
		argv, err := SplitCommand(cmd)
		out = append(out, Command{Options: opts, Argv: argv, Err: err})
	}
	return out
}
