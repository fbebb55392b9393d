#!/bin/sh
# Set up banpush on one host of a fleet that uses SSH certificates (README,
# "Fleet setup"). Run as root on the host, from a copy of the fleet
# directory made on the CA machine:
#
#   FLEET/user_ca.pub            the user CA's public key
#   FLEET/host_ca.pub            the host CA's public key
#   FLEET/peers                  the inventory, the same on every host
#   FLEET/known_hosts            the one '@cert-authority' line
#   FLEET/banpush_revoked.krl    the KRL (ssh-keygen -k), empty at first
#   FLEET/contrib/               a copy of banpush's contrib/ (this script
#                                is FLEET/contrib/fleet/setup-host.sh)
#
# First run (no certificates yet):
#
#   sh fleet/contrib/fleet/setup-host.sh [options]
#
# sets up everything that needs no certificate and copies this host's two
# public keys to FLEET/keys/ for the CA machine to sign:
#   - the receiving account (contrib/sshd/setup-receiver.sh) and its one
#     authorized_keys line ('banpush authorize --cert-authority');
#   - sshd: contrib/sshd/banpush.conf (ExposeAuthInfo for the account) and
#     /etc/ssh/sshd_config.d/banpush-fleet.conf (RevokedKeys for the
#     account, and HostCertificate once there is one), checked with sshd -t;
#   - /etc/banpush: the pushing key (made here if missing; the private key
#     never leaves the host), the inventory, known_hosts, the CA keys;
#     /etc/ssh/banpush_revoked.krl;
#   - fail2ban: the banpush filter, the receiving jail, the push action on
#     the jails given with --jails, and every peer's address in ignoreip
#     ('banpush peers ignoreip'), keeping the addresses of the ignoreip
#     already in force (jail.local's, say), checked with fail2ban-client -t;
#   - if sshd -t or fail2ban-client -t refuses the result, it puts back the
#     sshd and fail2ban files it replaced, removes those it added, reloads
#     nothing and exits 1;
#   - logrotate, the systemd flush timer and the bound on fail2ban's memory
#     (contrib/systemd/fail2ban.service.d/banpush.conf), where present;
#   where the banpush package is installed (and no /usr/local/bin/banpush),
#   the package's own copies of the sshd, fail2ban, logrotate and systemd
#   files are used instead of this contrib/'s;
#   - reloads sshd and fail2ban if they run;
#   - warns about any other user CA the account still trusts (a rotation's
#     old CA): --drop-other-cas removes it.
#
# Second run, with the two certificates the CA machine made, on stdin:
#
#   cat h01/*-cert.pub | ssh root@h01 sh fleet/contrib/fleet/setup-host.sh --certs [options]
#
# checks each certificate (user or host certificate, for this host's key,
# signed by the fleet's CA), installs them as /etc/banpush/id_ed25519-cert.pub
# and /etc/ssh/ssh_host_ed25519_key-cert.pub, and does everything above again.
# Run it again whenever the fleet directory changes (a new inventory, KRL or
# CA): it is idempotent. It overwrites every file it installs (the inventory
# and known_hosts of /etc/banpush among them); authorized_keys keeps its
# other lines.
#
# Options (give the same ones on every host, so that the authorized_keys line
# is the same everywhere):
#   --fleet DIR        the fleet directory (default: the directory that holds
#                      the contrib/ this script is in)
#   --certs            read this host's certificates from stdin
#   --allow-private    receive and push private addresses (a LAN's attackers)
#   --allow-unban      let every host of the fleet lift bans here ('banpush
#                      unban' on it; off by default: a compromised host could
#                      then lift bans fleet-wide)
#   --from CIDR        accept pushing hosts only from these addresses
#                      (comma-separated; sshd's from=); the receiver then never
#                      bans them either
#   --jails "J1 J2"    the jails whose bans are pushed (default: sshd; "" for
#                      none)
#   --ignoreip "A B"   more addresses for ignoreip (your admins'), besides the
#                      peers' and those already in force
#   --drop-other-cas   remove from the account's authorized_keys the lines
#                      of every user CA but user_ca.pub (the end of a CA
#                      rotation, once every host has a new certificate)
#
# Nothing secret passes through the command line or leaves the host.
set -eu

prog=setup-host.sh
say() { printf '%s\n' "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
contrib=$(cd "$here/.." && pwd)
fleet=$(cd "$contrib/.." && pwd)
certs=no
allow_private=no
allow_unban=no
from=
jails=sshd
extra_ignoreip=
drop_other_cas=no

while [ $# -gt 0 ]; do
	case $1 in
	--fleet)
		[ $# -ge 2 ] || die "--fleet needs a directory"
		fleet=$(cd "$2" && pwd) || die "--fleet $2: no such directory"
		shift 2
		;;
	--certs) certs=yes && shift ;;
	--drop-other-cas) drop_other_cas=yes && shift ;;
	--allow-private) allow_private=yes && shift ;;
	--allow-unban) allow_unban=yes && shift ;;
	--from)
		[ $# -ge 2 ] || die "--from needs addresses"
		from=$2 && shift 2
		;;
	--jails)
		[ $# -ge 2 ] || die "--jails needs a list (\"\" for none)"
		jails=$2 && shift 2
		;;
	--ignoreip)
		[ $# -ge 2 ] || die "--ignoreip needs addresses"
		extra_ignoreip=$2 && shift 2
		;;
	-h | --help)
		sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "run as root"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022

# The binary and the files of contrib/: a source install's, or else the
# banpush package's (README, Install), whose own copies of the sshd,
# fail2ban, logrotate and systemd files are left as it installed them, so
# that its upgrades keep working; the rest is done the same way.
bin=/usr/local/bin/banpush
packaged=no
if [ ! -x "$bin" ] && { dpkg-query -W -f='${Status}' banpush 2>/dev/null | grep -q ' ok installed$' ||
	rpm -q banpush >/dev/null 2>&1; }; then
	packaged=yes
	bin=$(command -v banpush) || die "the banpush package is installed, but banpush is not on PATH"
fi
[ -x "$bin" ] || die "$bin not found: install banpush first (README, Install)"
for f in user_ca.pub host_ca.pub peers known_hosts banpush_revoked.krl; do
	[ -f "$fleet/$f" ] || die "$fleet/$f not found: is $fleet the fleet directory? (--fleet DIR)"
done
for f in sshd/setup-receiver.sh sshd/banpush.conf fail2ban/filter.d/banpush.conf \
	fail2ban/jail.d/banpush.conf fail2ban/action.d/banpush.conf; do
	[ -f "$contrib/$f" ] || die "$contrib/$f not found: copy banpush's whole contrib/ directory"
done
case $jails in *[!A-Za-z0-9._\ -]*) die "--jails: jail names are letters, digits, '.', '_' and '-'" ;; esac

tmp=$(mktemp -d)
: >"$tmp/staged"
cleanup() {
	rc=$?
	rollback
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# put MODE SRC DEST: replace DEST with a copy of SRC, atomically (a reader
# sees the old file or the new one, never a part).
put() {
	install -m "$1" "$2" "$3.banpush-new"
	mv -f "$3.banpush-new" "$3"
}

# The sshd and fail2ban files go in through stage, which keeps a copy of
# what each replaces. Until commit, after sshd -t and fail2ban-client -t
# have accepted them all, any failure puts the previous files back
# (rollback, also run on exit): a configuration the checks refused is
# never left for the next restart or reboot to load.
#
# stage MODE SRC DEST: put, after copying DEST (if any) to $tmp/orig.N.
staged=0
stage() {
	staged=$((staged + 1))
	if [ -e "$3" ]; then
		cp -p "$3" "$tmp/orig.$staged"
	fi
	printf '%s %s\n' "$staged" "$3" >>"$tmp/staged"
	put "$1" "$2" "$3"
}

# rollback: put back every file staged since the last commit, or remove it
# if it is new.
rollback() {
	[ -s "$tmp/staged" ] || return 0
	while read -r n dest; do
		if [ -e "$tmp/orig.$n" ]; then
			cp -p "$tmp/orig.$n" "$dest.banpush-new" && mv -f "$dest.banpush-new" "$dest" &&
				printf '%s: put back the previous %s\n' "$prog" "$dest" >&2
		else
			rm -f "$dest" && printf '%s: removed the new %s\n' "$prog" "$dest" >&2
		fi
	done <"$tmp/staged"
	: >"$tmp/staged"
}

# commit: keep what was staged.
commit() { : >"$tmp/staged"; }

# refuse MESSAGE: put the previous files back, then die.
refuse() {
	rollback
	die "$*"
}

# stage_contrib SRC DEST: stage a file of contrib/, unless the package
# installed its own.
stage_contrib() {
	[ $packaged = yes ] || stage 0644 "$contrib/$1" "$2"
}

# put_contrib SRC DEST: put a file of contrib/ in place (no check can
# refuse it), unless the package installed its own.
put_contrib() {
	[ $packaged = yes ] || put 0644 "$contrib/$1" "$2"
}

# fingerprint FILE: the SHA256 fingerprint of a public key file.
fingerprint() { ssh-keygen -l -f "$1" | awk '{ print $2; exit }'; }

user_key=/etc/banpush/id_ed25519
host_key=/etc/ssh/ssh_host_ed25519_key
krl=/etc/ssh/banpush_revoked.krl
log=/var/log/banpush/received.log
[ -f "$host_key.pub" ] || die "$host_key.pub not found: sshd's ed25519 host key (ssh-keygen -A makes it)"

# The pushing key: made here, once; only its public half leaves the host.
install -d -m 0700 /etc/banpush
if [ ! -f "$user_key" ]; then
	ssh-keygen -q -t ed25519 -N '' -C "banpush@$(hostname -s)" -f "$user_key"
	say "made the pushing key $user_key"
fi

# install_cert FILE: check one certificate from the CA machine and put it
# in place. Never prints what it read, only what ssh-keygen made of it.
install_cert() {
	info=$(ssh-keygen -L -f "$1" 2>/dev/null) || die "a line on stdin is not an OpenSSH certificate"
	type=$(say "$info" | sed -n 's/^ *Type: [^ ]* \([a-z]*\) certificate$/\1/p')
	key=$(say "$info" | sed -n 's/^ *Public key: [^ ]* \(SHA256:[^ ]*\)$/\1/p')
	ca=$(say "$info" | sed -n 's/^ *Signing CA: [^ ]* \(SHA256:[^ ]*\) .*$/\1/p')
	id=$(say "$info" | sed -n 's/^ *Key ID: "\(.*\)"$/\1/p')
	valid=$(say "$info" | sed -n 's/^ *Valid: //p')
	case $type in
	user)
		[ "$key" = "$(fingerprint "$user_key.pub")" ] || die "the user certificate is not for this host's pushing key $user_key.pub: sign FLEET/keys/id_ed25519.pub of this host"
		[ "$ca" = "$(fingerprint "$fleet/user_ca.pub")" ] || die "the user certificate is not signed by the fleet's user CA (user_ca.pub)"
		case $id in
		'' | *[!A-Za-z0-9._-]*) die "the user certificate's key ID is not a peer name (1 to 64 of A-Za-z0-9._-): sign with -I HOSTNAME" ;;
		esac
		[ ${#id} -le 64 ] || die "the user certificate's key ID is longer than 64 characters"
		put 0644 "$1" "$user_key-cert.pub"
		say "installed $user_key-cert.pub: peers will log this host as peer=$id; valid $valid"
		;;
	host)
		[ "$key" = "$(fingerprint "$host_key.pub")" ] || die "the host certificate is not for this host's key $host_key.pub: sign FLEET/keys/ssh_host_ed25519_key.pub of this host"
		[ "$ca" = "$(fingerprint "$fleet/host_ca.pub")" ] || die "the host certificate is not signed by the fleet's host CA (host_ca.pub)"
		put 0644 "$1" "$host_key-cert.pub"
		say "installed $host_key-cert.pub (key ID $id); valid $valid"
		;;
	*) die "a certificate on stdin is neither a user nor a host certificate" ;;
	esac
}

if [ $certs = yes ]; then
	n=0
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
		n=$((n + 1))
		[ $n -le 2 ] || die "more than two certificates on stdin (want this host's user and host certificates)"
		printf '%s\n' "$line" >"$tmp/cert$n.pub"
		install_cert "$tmp/cert$n.pub"
	done
	[ $n -gt 0 ] || die "--certs: no certificate on stdin (cat HOST/*-cert.pub | ssh root@HOST sh $0 --certs)"
fi

# The fleet's files.
put 0644 "$fleet/user_ca.pub" /etc/banpush/user_ca.pub
put 0644 "$fleet/host_ca.pub" /etc/banpush/host_ca.pub
put 0600 "$fleet/peers" /etc/banpush/peers
put 0644 "$fleet/known_hosts" /etc/banpush/known_hosts
put 0644 "$fleet/banpush_revoked.krl" "$krl"

# The receiving account and its one line: every key the user CA signed for
# the principal banpush, named after its certificate's key ID. The
# account's home and ~/.ssh are directories it can change: nothing here
# touches them by path. setup-receiver.sh makes the account and runs
# 'banpush setup-account', and 'banpush authorize --install' writes the
# line, both through descriptors.
BANPUSH_BIN=$bin sh "$contrib/sshd/setup-receiver.sh" >/dev/null
home=$(getent passwd banpush | cut -d: -f6)
[ -n "$home" ] || die "no home directory for the account banpush"
set -- --cert-authority /etc/banpush/user_ca.pub --log "$log"
[ $allow_private = no ] || set -- "$@" --allow-private
[ $allow_unban = no ] || set -- "$@" --allow-unban
[ -z "$from" ] || set -- "$@" --from "$from"
# Other user CAs the account trusts (the old CA of a rotation, whose line
# --install does not replace): authorize warns about each, and with
# --drop-other-cas removes their lines in the same rewrite of the file.
[ $drop_other_cas = no ] || set -- "$@" --drop-other-cas
"$bin" authorize "$@" --install "$home/.ssh/authorized_keys"

# sshd: the account's settings (ExposeAuthInfo: the receiver reads the
# certificate sshd verified), the KRL, and the host certificate.
install -d -m 0755 /etc/ssh/sshd_config.d
stage_contrib sshd/banpush.conf /etc/ssh/sshd_config.d/banpush.conf
{
	say "# Written by banpush's contrib/fleet/setup-host.sh: run it again to change it."
	if [ -f "$host_key-cert.pub" ]; then
		[ "$(ssh-keygen -L -f "$host_key-cert.pub" | sed -n 's/^ *Public key: [^ ]* \(SHA256:[^ ]*\)$/\1/p')" = "$(fingerprint "$host_key.pub")" ] ||
			die "$host_key-cert.pub is not for $host_key.pub (new host keys?): sign the new key and run with --certs"
		say "HostCertificate $host_key-cert.pub"
	fi
	say "Match User banpush"
	say "	RevokedKeys $krl"
} >"$tmp/banpush-fleet.conf"
stage 0644 "$tmp/banpush-fleet.conf" /etc/ssh/sshd_config.d/banpush-fleet.conf
sshd -t >"$tmp/sshd.out" 2>&1 || {
	cat "$tmp/sshd.out" >&2
	refuse "sshd -t refused the configuration with banpush's files (above): the previous files are back and sshd was not reloaded; fix it, then run this again"
}

# fail2ban: filter, receiving jail, push action, and ignoreip. The
# receiving jails take [DEFAULT]'s ignoreip; the snippet sets it in their
# own sections too, in case a local copy of a jail sets its own
# (banpush-quorum's only matters once an administrator enables that jail).
stage_contrib fail2ban/filter.d/banpush.conf /etc/fail2ban/filter.d/banpush.conf
stage_contrib fail2ban/jail.d/banpush.conf /etc/fail2ban/jail.d/banpush.conf
stage_contrib fail2ban/action.d/banpush.conf /etc/fail2ban/action.d/banpush.conf
pushargs=
[ $allow_private = no ] || pushargs='[pushargs="--allow-private"]'
{
	say "# Written by banpush's contrib/fleet/setup-host.sh: the jails whose bans are pushed."
	for j in $jails; do
		[ "$j" != banpush ] || refuse "--jails: never the receiving jail banpush (a received ban would go back to every peer)"
		printf '[%s]\naction = %%(action_)s\n         banpush%s\n\n' "$j" "$pushargs"
	done
} >"$tmp/push.local"
stage 0644 "$tmp/push.local" /etc/fail2ban/jail.d/banpush-push.local

# The ignoreip in force without this script's snippet (jail.local's,
# another file's, or fail2ban's default), as the banpush jail sees it: the
# snippet is read after jail.local and replaces it, so its addresses go
# into the snippet too.
cp -R /etc/fail2ban "$tmp/fail2ban"
rm -f "$tmp/fail2ban/jail.d/00-banpush-ignoreip.local"
fail2ban-client -c "$tmp/fail2ban" -d >"$tmp/f2b.dump" 2>&1 || {
	cat "$tmp/f2b.dump" >&2
	refuse "fail2ban-client -d could not read the configuration (above): the previous files are back and fail2ban was not reloaded; fix it, then run this again"
}
grep -q "^\['add', 'banpush', " "$tmp/f2b.dump" ||
	printf '%s: warning: fail2ban-client -d shows no banpush jail: the ignoreip in force is unknown, and only the addresses of the peers and of --ignoreip go into %s\n' \
		"$prog" /etc/fail2ban/jail.d/00-banpush-ignoreip.local >&2
current=$(sed -n "s/^\['set', 'banpush', 'addignoreip', \(.*\)\]\$/\1/p" "$tmp/f2b.dump" | tr -d "'," | tr '\n' ' ')
set -f
ignoreip=
kept=
for a in $("$bin" peers ignoreip) $extra_ignoreip; do
	case " $ignoreip " in *" $a "*) ;; *) ignoreip="${ignoreip:+$ignoreip }$a" ;; esac
done
for a in $current; do
	case " $ignoreip " in *" $a "*) ;; *)
		ignoreip="$ignoreip $a"
		kept="${kept:+$kept }$a"
		;;
	esac
done
set +f
[ -z "$kept" ] || say "ignoreip: kept $kept, from the ignoreip already in force (jail.local or another file)"
{
	say "# Written by banpush's contrib/fleet/setup-host.sh from 'banpush peers ignoreip'."
	for section in DEFAULT banpush banpush-quorum; do
		printf '[%s]\nignoreip = %s\n\n' "$section" "$ignoreip"
	done
} >"$tmp/ignoreip.local"
stage 0644 "$tmp/ignoreip.local" /etc/fail2ban/jail.d/00-banpush-ignoreip.local
fail2ban-client -t >"$tmp/f2b.out" 2>&1 || {
	cat "$tmp/f2b.out" >&2
	refuse "fail2ban-client -t refused the configuration with banpush's files (above): the previous files are back and nothing was reloaded; fix it, then run this again"
}
commit

[ ! -d /etc/logrotate.d ] || put_contrib logrotate.d/banpush /etc/logrotate.d/banpush
if [ -d /etc/systemd/system ]; then
	if [ $packaged = no ]; then
		install -d -m 0755 /etc/systemd/system/fail2ban.service.d
		put_contrib systemd/fail2ban.service.d/banpush.conf /etc/systemd/system/fail2ban.service.d/banpush.conf
	fi
	put_contrib systemd/banpush-flush.service /etc/systemd/system/banpush-flush.service
	put_contrib systemd/banpush-flush.timer /etc/systemd/system/banpush-flush.timer
	for u in path service timer; do
		put_contrib systemd/banpush-apply-unbans.$u /etc/systemd/system/banpush-apply-unbans.$u
	done
fi

# Reload what runs.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now banpush-flush.timer >/dev/null 2>&1
	systemctl enable --now banpush-apply-unbans.path banpush-apply-unbans.timer >/dev/null 2>&1
	if systemctl is-active --quiet ssh; then
		systemctl reload ssh
	elif systemctl is-active --quiet sshd; then
		systemctl reload sshd
	fi
elif [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
	kill -HUP "$(cat /run/sshd.pid)"
else
	say "sshd is not running: it reads the new settings when it starts"
fi
if fail2ban-client ping >/dev/null 2>&1; then
	fail2ban-client reload >/dev/null
	# A reload drops an action newly added to a running jail (fail2ban
	# 1.0.2): restart each pushing jail so that it loads the banpush action.
	for j in $jails; do
		fail2ban-client reload --restart "$j" >/dev/null
	done
else
	say "fail2ban is not running: it reads the new settings when it starts"
fi

# What the CA machine signs: this host's two public keys.
install -d -m 0755 "$fleet/keys"
install -m 0644 "$user_key.pub" "$fleet/keys/id_ed25519.pub"
install -m 0644 "$host_key.pub" "$fleet/keys/ssh_host_ed25519_key.pub"

"$bin" peers list
if [ -f "$user_key-cert.pub" ] && [ -f "$host_key-cert.pub" ]; then
	say "done; once the other hosts are set up, 'banpush peers check' should say ok for each"
else
	say "done; now sign $fleet/keys/*.pub on the CA machine and run this again with --certs (README, Fleet setup)"
fi
