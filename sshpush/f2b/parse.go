package f2b

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/banpush/banpush/sshpush/record"
)

// Jail is one jail as fail2ban's configuration describes it.
type Jail struct {
	Name     string
	LogPaths []string
	Actions  []Action
}

// Action is one action of a configured jail: its name (what 'fail2ban-client
// get JAIL actions' lists once it is loaded) and its actionban command.
type Action struct {
	Name string
	Ban  string
}

// Pushes reports whether the action is banpush's: the contrib action
// (action.d/banpush.conf, whatever path it gives the binary), or another
// whose actionban runs 'banpush push'.
func (a Action) Pushes() bool {
	if a.Name == "banpush" {
		return true
	}
	for _, f := range strings.Fields(a.Ban) {
		if f == "push" {
			return strings.Contains(a.Ban, "banpush")
		}
	}
	return false
}

// maxLines bounds the lines a parser reads.
const maxLines = 100000

// ParseStatus reads the jail list of 'fail2ban-client status'.
func ParseStatus(out []byte) ([]string, error) {
	for _, l := range lines(out) {
		_, list, ok := strings.Cut(l, "Jail list:")
		if !ok {
			continue
		}
		return splitList(list)
	}
	return nil, errors.New("f2b: status: no jail list in the answer")
}

// ParseActions reads 'fail2ban-client get JAIL actions'.
func ParseActions(out []byte) ([]string, error) {
	ls := lines(out)
	for i, l := range ls {
		if strings.HasPrefix(l, "No actions for jail") {
			return []string{}, nil
		}
		if strings.HasSuffix(l, "has the following actions:") {
			if i+1 == len(ls) {
				return []string{}, nil
			}
			return splitList(ls[i+1])
		}
	}
	return nil, errors.New("f2b: get actions: unexpected answer")
}

// ParseLogPaths reads 'fail2ban-client get JAIL logpath'.
func ParseLogPaths(out []byte) ([]string, error) {
	paths := []string{}
	found := false
	for _, l := range lines(out) {
		switch {
		case strings.HasPrefix(l, "No file is currently monitored"):
			return paths, nil
		case strings.HasPrefix(l, "Current monitored log file(s):"):
			found = true
		case found && (strings.HasPrefix(l, "|- ") || strings.HasPrefix(l, "`- ")):
			p := strings.TrimSpace(l[3:])
			if p == "" || !strings.HasPrefix(p, "/") {
				return nil, errors.New("f2b: get logpath: not an absolute path")
			}
			paths = append(paths, p)
		}
	}
	if !found {
		return nil, errors.New("f2b: get logpath: unexpected answer")
	}
	return paths, nil
}

// ErrLogNotFile is returned by ParseLogTarget (and Client.LogTarget) when
// fail2ban logs to SYSLOG, STDOUT, STDERR or SYSTEMD-JOURNAL: there is no
// file of its log to follow.
var ErrLogNotFile = errors.New("f2b: fail2ban does not log to a file")

// maxPath bounds a path read from fail2ban-client (PATH_MAX).
const maxPath = 4096

// ParseLogTarget reads 'fail2ban-client get logtarget', two lines:
//
//	Current logging target is:
//	`- /var/log/fail2ban.log
//
// and returns the file, an absolute path of printable ASCII. A target that
// is no file (SYSLOG, STDOUT, ...) is ErrLogNotFile, with a hint.
func ParseLogTarget(out []byte) (string, error) {
	ls := lines(out)
	for len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	if len(ls) != 2 || ls[0] != "Current logging target is:" || !strings.HasPrefix(ls[1], "`- ") {
		return "", errors.New("f2b: get logtarget: unexpected answer")
	}
	target := ls[1][3:]
	switch u := strings.ToUpper(target); u {
	case "SYSLOG", "STDOUT", "STDERR", "SYSOUT", "SYSTEMD-JOURNAL", "INHERITED":
		return "", fmt.Errorf("%w but to %s: set logtarget = /var/log/fail2ban.log in /etc/fail2ban/fail2ban.local and restart fail2ban", ErrLogNotFile, u)
	}
	if len(target) > maxPath || !strings.HasPrefix(target, "/") || record.Printable(target) != target {
		return "", errors.New("f2b: get logtarget: not an absolute path of printable ASCII")
	}
	return target, nil
}

// ParseDump reads the jails out of 'fail2ban-client -d': one Python list
// literal a line, the commands a start would send to the server. Lines
// that are not such lists (warnings) are skipped; a list that does not
// parse is an error naming its line.
func ParseDump(out []byte) ([]Jail, error) {
	var jails []Jail
	index := map[string]int{}
	jail := func(name string) *Jail {
		i, ok := index[name]
		if !ok {
			i = len(jails)
			index[name] = i
			jails = append(jails, Jail{Name: name})
		}
		return &jails[i]
	}
	action := func(j *Jail, name string) *Action {
		for i := range j.Actions {
			if j.Actions[i].Name == name {
				return &j.Actions[i]
			}
		}
		j.Actions = append(j.Actions, Action{Name: name})
		return &j.Actions[len(j.Actions)-1]
	}
	cmds, err := dumpCommands(out)
	if err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		w := make([]string, len(cmd))
		for i, x := range cmd {
			w[i], _ = x.(string)
		}
		if len(w) < 2 || !ValidJail(w[1]) || len(w) >= 4 && w[2] != "addlogpath" && !ValidJail(w[3]) {
			continue // a global setting, or a name no jail has
		}
		switch {
		case w[0] == "add":
			jail(w[1])
		case len(w) >= 4 && w[0] == "set" && w[2] == "addlogpath":
			j := jail(w[1])
			j.LogPaths = append(j.LogPaths, w[3])
		case len(w) >= 4 && w[0] == "set" && w[2] == "addaction":
			action(jail(w[1]), w[3])
		case len(w) >= 6 && w[0] == "set" && w[2] == "action" && w[4] == "actionban":
			action(jail(w[1]), w[3]).Ban = w[5]
		case len(w) == 5 && w[0] == "multi-set" && w[2] == "action":
			a := action(jail(w[1]), w[3])
			pairs, _ := cmd[4].([]any)
			for _, p := range pairs {
				kv, _ := p.([]any)
				if len(kv) == 2 {
					if k, _ := kv[0].(string); k == "actionban" {
						a.Ban, _ = kv[1].(string)
					}
				}
			}
		}
	}
	return jails, nil
}

// dumpCommands reads the commands of 'fail2ban-client -d': one Python
// list literal a line. Lines that are not such lists (warnings) are
// skipped; a list that does not parse is an error naming its line.
func dumpCommands(out []byte) ([][]any, error) {
	var cmds [][]any
	for n, l := range lines(out) {
		if !strings.HasPrefix(l, "[") {
			continue
		}
		v, err := ParseLiteral(l)
		if err != nil {
			return nil, fmt.Errorf("f2b: dump line %d: %w", n+1, err)
		}
		cmd, _ := v.([]any)
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// lines splits out into at most maxLines lines, without their ends.
func lines(out []byte) []string {
	var ls []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), maxOutput)
	for sc.Scan() && len(ls) < maxLines {
		ls = append(ls, strings.TrimRight(sc.Text(), "\r"))
	}
	return ls
}

// splitList splits fail2ban's ", "-separated list.
func splitList(s string) ([]string, error) {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !ValidJail(f) {
			return nil, errors.New("f2b: unexpected name in a list")
		}
		out = append(out, f)
	}
	return out, nil
}

// maxDepth bounds the nesting ParseLiteral accepts.
const maxDepth = 16

// ParseLiteral parses one Python literal as fail2ban-client -d prints it
// (repr of a list): lists and tuples ([]any), strings (string), integers
// (int64), floats (float64), True, False and None. Anything else is an
// error.
func ParseLiteral(s string) (any, error) {
	p := &litParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected text at byte %d", p.i+1)
	}
	return v, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *litParser) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", p.i+1, fmt.Sprintf(format, args...))
}

func (p *litParser) value(depth int) (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("value expected")
	}
	switch c := p.s[p.i]; {
	case c == '[' || c == '(':
		if depth >= maxDepth {
			return nil, p.errorf("nested too deep")
		}
		return p.list(depth)
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, w := range []struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) {
			p.i += len(w.word)
			return w.v, nil
		}
	}
	return nil, p.errorf("unexpected character")
}

func (p *litParser) list(depth int) (any, error) {
	end := byte(']')
	if p.s[p.i] == '(' {
		end = ')'
	}
	p.i++
	out := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unterminated list")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case end:
		default:
			return nil, p.errorf("',' expected")
		}
	}
}

func (p *litParser) number() (any, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && strings.IndexByte("0123456789.eE+-", p.s[p.i]) >= 0 {
		p.i++
	}
	t := p.s[start:p.i]
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return nil, fmt.Errorf("byte %d: not a number", start+1)
	}
	return f, nil
}

// str parses a quoted string with Python's escapes (those repr writes).
func (p *litParser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.s) {
			break
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.i+n > len(p.s) {
				return nil, p.errorf("short escape")
			}
			r, err := strconv.ParseUint(p.s[p.i:p.i+n], 16, 32)
			if err != nil || r > 0x10ffff {
				return nil, p.errorf("bad escape")
			}
			b.WriteRune(rune(r))
			p.i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return nil, p.errorf("unterminated string")
}

// Setting is one command of 'fail2ban-client -d' for a jail: "add" (the
// jail is enabled; Values holds its backend), or a "set" of one key
// (bantime, addfailregex, addignoreip, addaction, ...) with its values,
// numbers written in decimal. Actions' own settings (multi-set) are left
// out.
type Setting struct {
	Jail   string
	Key    string
	Values []string
}

// ParseSettings reads the jails' settings out of 'fail2ban-client -d', as
// ParseDump reads it: lines that are not Python lists are skipped, a list
// that does not parse is an error naming its line, and a jail name
// fail2ban could not have made is passed over.
func ParseSettings(out []byte) ([]Setting, error) {
	var ss []Setting
	cmds, err := dumpCommands(out)
	if err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		if len(cmd) < 2 {
			continue
		}
		verb, _ := cmd[0].(string)
		jail, _ := cmd[1].(string)
		if !ValidJail(jail) {
			continue
		}
		var s Setting
		switch {
		case verb == "add":
			s = Setting{Jail: jail, Key: "add"}
			cmd = cmd[2:]
		case verb == "set" && len(cmd) >= 4: // a global setting has three
			key, _ := cmd[2].(string)
			s = Setting{Jail: jail, Key: key}
			cmd = cmd[3:]
		default:
			continue
		}
		for _, x := range cmd {
			switch x := x.(type) {
			case string:
				s.Values = append(s.Values, x)
			case int64:
				s.Values = append(s.Values, strconv.FormatInt(x, 10))
			}
		}
		ss = append(ss, s)
	}
	return ss, nil
}
