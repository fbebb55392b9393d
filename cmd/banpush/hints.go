package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/authkeys"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/skeema/knownhosts"
)

// The hints that say what to do about a peer that failed: peers check,
// peers trust, and the reports of flush, push --wait and unban --wait.

// usesCertificates reports whether the peer is reached the way a
// certificate fleet is: with a CertificateFile, or a KEY-cert.pub beside an
// identity file. Its hints then give the fleet's fix (sign again with the
// fleet's CA, setup-host.sh) instead of the per-key one (authorize,
// peers trust).
func usesCertificates(t sshpush.Target) bool {
	if len(t.CertificateFiles) > 0 {
		return true
	}
	for _, id := range t.IdentityFiles {
		if _, err := os.Stat(id + "-cert.pub"); err == nil {
			return true
		}
	}
	return false
}

// home is the peer's receiving account's home, for a hint: ~USER.
func home(t sshpush.Target) string {
	if t.User == "" {
		return "~USER"
	}
	return "~" + t.User
}

// knownHostsFile is the first known_hosts file the peer's host key is
// looked up in, for a hint.
func knownHostsFile(t sshpush.Target) string {
	if len(t.KnownHostsFiles) > 0 {
		return t.KnownHostsFiles[0]
	}
	return "known_hosts"
}

// certHostName is the principal a peer's host certificate must carry: its
// HostKeyAlias, or else its HostName.
func certHostName(t sshpush.Target) string {
	if t.HostKeyAlias != "" {
		return t.HostKeyAlias
	}
	return t.HostName
}

// checkHint tells what to do about a failed check.
func checkHint(class sshpush.Class, p roster.Peer, err error, timeout time.Duration, g *Globals) string {
	t := p.Target
	addr := t.Addr()
	switch class {
	case sshpush.ClassUnreachable:
		return fmt.Sprintf("is sshd running on %s and listening on port %d? is a firewall in the way? are HostName and Port right in %s ('banpush peers list')?",
			t.HostName, t.PortOr22(), g.Inventory)
	case sshpush.ClassTimeout:
		return fmt.Sprintf("%s did not answer within %s: a firewall may drop the packets, or the host is down or overloaded; check HostName and Port, or give it longer with --timeout", addr, timeout)
	case sshpush.ClassHostKeyUnknown:
		if usesCertificates(t) {
			return fmt.Sprintf("%s presents a host key without a certificate, and %s trusts no such key: on the CA machine, sign a copy of its /etc/ssh/ssh_host_ed25519_key.pub with the fleet's host CA (ssh-keygen -s host_ca -h -I %s -n %s -V +52w ssh_host_ed25519_key.pub) and install it there with 'setup-host.sh --certs', which reloads sshd (docs/fleet.md); %s must hold the fleet's '@cert-authority * HOST_CA_KEY' line, which contrib/fleet/setup-host.sh installs",
				p.Name, knownHostsFile(t), p.Name, certHostName(t), knownHostsFile(t))
		}
		return fmt.Sprintf("run 'banpush peers trust %s': it shows the key's fingerprint, to compare with the peer's own ('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' there), before adding it", p.Name)
	case sshpush.ClassHostKeyChanged:
		var e *sshpush.Error
		if errors.As(err, &e) && e.Revoked {
			return fmt.Sprintf("a revoked key is never trusted again: find out why it was revoked; if %s was rekeyed, sign its new host key with the host CA (or trust its new key with 'banpush peers trust %s')", p.Name, p.Name)
		}
		where := "the stale line from known_hosts"
		if errors.As(err, &e) && e.HostKey != nil {
			if st, _ := sshpush.LookupHostKey(t, e.HostKey); len(st.Stale) > 0 {
				k := st.Stale[0]
				where = fmt.Sprintf("the stale line %d from %s ('ssh-keygen -R %s -f %s')", k.Line, k.Filename, shellQuote(knownHostsName(t)), shellQuote(k.Filename))
			}
		}
		if usesCertificates(t) {
			return fmt.Sprintf("the host presents a different key: make sure it was really reinstalled or rekeyed (otherwise someone may be in between), then remove %s, and sign its new host key with the fleet's host CA and install it there with 'setup-host.sh --certs' (docs/fleet.md) rather than trusting the key itself", where)
		}
		return fmt.Sprintf("the host presents a different key: make sure it was really reinstalled or rekeyed (otherwise someone may be in between), then remove %s and run 'banpush peers trust %s'", where, p.Name)
	case sshpush.ClassHostCertCA:
		return fmt.Sprintf("trust the CA that signed %s's host key with a line '@cert-authority PATTERN CA_KEY' in known_hosts (PATTERN matching %s), or sign a copy of the peer's /etc/ssh/ssh_host_ed25519_key.pub on the CA machine with the fleet's host CA (ssh-keygen -s host_ca -h -I %s -n %s ssh_host_ed25519_key.pub) and install the certificate there",
			p.Name, knownHostsName(t), p.Name, certHostName(t))
	case sshpush.ClassHostCertTime:
		return fmt.Sprintf("sign a copy of %s's host public key again on the CA machine, valid now (ssh-keygen -s host_ca -h -I %s -n %s -V +52w ssh_host_ed25519_key.pub), install the certificate there and reload sshd; if it is not valid yet, check both clocks", p.Name, p.Name, certHostName(t))
	case sshpush.ClassHostCertHost:
		return fmt.Sprintf("the certificate must name the host as banpush reaches it, %s (its HostKeyAlias, else its HostName): sign a copy of %s's host public key again on the CA machine with that name (ssh-keygen -s host_ca -h -I %s -n %s ssh_host_ed25519_key.pub) and install the certificate there, or set HostKeyAlias for %s in %s to a name the certificate has",
			certHostName(t), p.Name, p.Name, certHostName(t), p.Name, g.Inventory)
	case sshpush.ClassAuth:
		pub := "KEY.pub"
		if len(t.IdentityFiles) > 0 {
			pub = t.IdentityFiles[0] + ".pub"
		}
		if usesCertificates(t) {
			cert := strings.TrimSuffix(pub, ".pub") + "-cert.pub"
			if len(t.CertificateFiles) > 0 {
				cert = t.CertificateFiles[0]
			}
			return fmt.Sprintf("%s accepted neither this host's key nor its certificate: 'ssh-keygen -Lf %s' shows whether the certificate is valid now and names the principal banpush; if not, sign %s again on the CA machine with the fleet's user CA (ssh-keygen -s user_ca -I %s -n banpush -V +52w %s) and install the certificate here with 'setup-host.sh --certs' (docs/fleet.md). If it is, %s's authorized_keys lacks the fleet's cert-authority line, or its KRL revokes this key: run contrib/fleet/setup-host.sh there again",
				p.Name, cert, filepath.Base(pub), thisHostName(), filepath.Base(pub), home(t)+" on "+p.Name)
		}
		return fmt.Sprintf("install this host's key for %s on the peer: there, run 'banpush authorize --peer %s --log /var/log/banpush/received.log --from ADDRESS_OF_THIS_HOST --install %s/.ssh/authorized_keys %s' (with a copy of %s); in a certificate fleet, install this host's certificate as %s-cert.pub instead ('setup-host.sh --certs', docs/fleet.md)",
			t.User, thisHostName(), home(t), filepath.Base(pub), pub, strings.TrimSuffix(pub, ".pub"))
	case sshpush.ClassNotBanpush:
		return fmt.Sprintf("the key logs in to a plain account on %s: its authorized_keys line lacks the forced command; replace it with the line 'banpush authorize' prints there", t.HostName)
	case sshpush.ClassRejected:
		return "the receiver refused the request: see its message; is banpush on the peer as recent as here, and are the arguments in its authorized_keys line right?"
	case sshpush.ClassBusy:
		return "the receiver is busy: try again in a moment"
	case sshpush.ClassCannotWrite:
		return fmt.Sprintf("the receiving account on %s cannot write its log (the message says which file and why): there, as root, 'banpush doctor' finds it and 'banpush setup-account' gives the account its log; the bans stay queued here until it can", p.Name)
	case sshpush.ClassTooOld:
		return fmt.Sprintf("upgrade banpush on %s: its receiver predates unbans; they stay queued here, and its later bans with them, until it is upgraded", p.Name)
	case sshpush.ClassReceiverError:
		return "the receiver failed: see its message; on the peer, check that the --log file of its authorized_keys line is writable by that account"
	case sshpush.ClassConfig:
		return "fix the peer in " + g.Inventory + " or its known_hosts files; 'banpush peers list' shows the settings banpush uses"
	}
	return ""
}

// thisHostName is this host's name for the hint of an auth failure.
func thisHostName() string {
	if h := roster.ShortHostname(); record.ValidName(h) {
		return h
	}
	return "NAME"
}

// shellQuote quotes s for a POSIX shell, for a command shown in a hint.
func shellQuote(s string) string {
	if q, err := authkeys.ShellQuote(s); err == nil {
		return q
	}
	return s
}

// knownHostsName is the host as known_hosts writes it: [host]:port for a
// port other than 22.
func knownHostsName(t sshpush.Target) string {
	return knownhosts.Normalize(t.KnownHostsAddr())
}
