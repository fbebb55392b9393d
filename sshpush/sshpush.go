// Package sshpush is banpush's SSH client. It connects to a peer's sshd with
// the keys and known_hosts files it is given, and runs the receiver's
// requests (package wire: ping, ban, stream) as sessions on one connection.
//
// What it trusts: the Target and Options it is given (they come from the
// administrator's configuration) and the files they name. What it does not
// trust: everything that comes from the network. Host keys are verified
// strictly against known_hosts and never accepted implicitly (FetchHostKey
// only reports a key, for a person to decide). The receiver's output is read
// with fixed bounds, parsed as a tiny grammar, and whatever is kept of it for
// messages is reduced to printable ASCII.
//
// Like every banpush library package it never prints, never reads
// environment variables and never prompts: warnings go to Options.Warn,
// failures come back as *Error values with a Class callers can branch on.
package sshpush

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Target.ConnectTimeout,
// Options.HandshakeTimeout and Options.SessionTimeout. Together they stay
// far below fail2ban's 60 s action timeout.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultSessionTimeout   = 30 * time.Second
)

// Limits on what is read from a receiver.
const (
	maxStdout = 4 << 10
	maxStderr = 4 << 10
)

// Target says how to reach one peer. It holds resolved settings: tildes,
// %-tokens and environment variables are the caller's job (for example
// SSH_AUTH_SOCK for IdentityAgent). Dial reads no other files and uses no
// other defaults than the ones documented here.
type Target struct {
	// Name is the peer's name, used in messages only. HostName is used
	// when it is empty.
	Name string

	// HostName and Port are what is dialed. Port 0 means 22.
	HostName string
	Port     int
	User     string

	// IdentityFiles are private key paths, offered in this order. A missing
	// file is skipped silently, as OpenSSH does. A sibling PATH-cert.pub is
	// offered too, before the key itself. An encrypted key is used through
	// the agent when the agent holds it, and skipped with a warning
	// otherwise: nothing ever prompts for a passphrase.
	IdentityFiles []string

	// CertificateFiles are OpenSSH user certificates (*-cert.pub). Each is
	// offered with the identity, from a file or from the agent, whose key
	// it certifies.
	CertificateFiles []string

	// IdentitiesOnly restricts agent keys to those matching IdentityFiles
	// (the private key, or PATH.pub beside it).
	IdentitiesOnly bool

	// IdentityAgent is the path of an ssh-agent socket. Empty or "none"
	// means no agent. Agent keys are offered after the configured files.
	// An agent that cannot be reached is a warning, not an error.
	IdentityAgent string

	// KnownHostsFiles are read for host keys, user files first then global
	// ones. Missing files are skipped; when none exists every host is
	// unknown.
	KnownHostsFiles []string

	// HostKeyAlias, when set, is the name looked up in (and written to)
	// known_hosts instead of HostName and port, as in OpenSSH.
	HostKeyAlias string

	// ConnectTimeout bounds the TCP connect; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Options are the settings shared by every peer.
type Options struct {
	// HandshakeTimeout bounds the SSH handshake, host key check and
	// authentication together; 0 means DefaultHandshakeTimeout. A peer
	// that accepts TCP but never speaks fails after at most
	// ConnectTimeout + HandshakeTimeout.
	HandshakeTimeout time.Duration

	// SessionTimeout bounds each request (Ping, Ban) from opening the
	// session to the receiver's exit; 0 means DefaultSessionTimeout. A
	// request that overruns it closes the whole Client: a peer that does
	// not answer in time is not given the next batch on the same
	// connection.
	SessionTimeout time.Duration

	// Warn receives warnings that do not stop the connection, such as a
	// key that was skipped. Each is one line naming the peer. Nil
	// discards them.
	Warn func(msg string)
}

func (o Options) withDefaults() Options {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	return o
}

func (t Target) peer() string {
	if t.Name != "" {
		return t.Name
	}
	return t.HostName
}

// PortOr22 is the port dialed: Port, or 22 when it is 0.
func (t Target) PortOr22() int {
	if t.Port == 0 {
		return 22
	}
	return t.Port
}

// Addr is the address dialed, host:port.
func (t Target) Addr() string {
	return net.JoinHostPort(t.HostName, strconv.Itoa(t.PortOr22()))
}

// KnownHostsAddr is the host:port looked up in known_hosts. With a
// HostKeyAlias the alias is used alone, without the port, as OpenSSH does.
func (t Target) KnownHostsAddr() string {
	if t.HostKeyAlias != "" {
		return net.JoinHostPort(t.HostKeyAlias, "22")
	}
	return t.Addr()
}

func (t Target) connectTimeout() time.Duration {
	if t.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return t.ConnectTimeout
}

func (t Target) agentPath() string {
	if t.IdentityAgent == "none" {
		return ""
	}
	return t.IdentityAgent
}

// check refuses settings that cannot name an SSH server.
func (t Target) check() error {
	switch {
	case t.HostName == "":
		return errors.New("no host name")
	case !safeWord(t.HostName):
		return errors.New("the host name is not a name or address")
	case t.HostKeyAlias != "" && !safeWord(t.HostKeyAlias):
		return errors.New("the host key alias is not a host name")
	case t.Port < 0 || t.Port > 65535:
		return fmt.Errorf("port %d out of range", t.Port)
	case t.User == "":
		return errors.New("no user name")
	case !safeWord(t.User):
		return errors.New("the user name is not printable ASCII without spaces")
	}
	return nil
}

// safeWord reports whether s is non-empty printable ASCII without spaces,
// commas or the characters that make known_hosts patterns.
func safeWord(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return !strings.ContainsAny(s, ",*?!|#")
}
