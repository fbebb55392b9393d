#!/bin/sh
# Set up banpush on one host of a fleet that uses SSH certificates
# (docs/fleet.md). Run as root on the host, from a copy of the fleet
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
#     never leaves the host), the inventory, known_hosts, the CA keys, the
#     settings (setup-host.conf, below); /etc/ssh/banpush_revoked.krl;
#   - fail2ban: the banpush filter, the receiving jail, the push action on
#     the jails given with --jails, and every peer's address in ignoreip
#     ('banpush peers ignoreip'), keeping the addresses of the ignoreip
#     already in force (jail.local's, say), checked with fail2ban-client -t;
#   - logrotate, the systemd flush timer, apply-unbans and the bound on
#     fail2ban's memory (contrib/systemd/fail2ban.service.d/banpush.conf),
#     where present; without systemd it says what to run instead;
#   where the banpush package is installed (and no /usr/local/bin/banpush),
#   the package's own copies of the sshd, fail2ban, logrotate and systemd
#   files are used instead of this contrib/'s;
#   - reloads sshd and fail2ban if they run;
#   - warns about any other user CA the account still trusts (a rotation's
#     old CA): --drop-other-cas removes it;
#   - names the peers new in the inventory, which need this host's bans
#     ('banpush sync NAME').
#
# Second run, with the two certificates the CA machine made, on stdin:
#
#   cat h01/*-cert.pub | ssh root@h01 sh fleet/contrib/fleet/setup-host.sh --certs
#
# checks each certificate (user or host certificate, for this host's key,
# signed by the fleet's CA), installs them as /etc/banpush/id_ed25519-cert.pub
# and /etc/ssh/ssh_host_ed25519_key-cert.pub, and does everything above again,
# with the options of the first run.
# Run it again whenever the fleet directory changes (a new inventory, KRL or
# CA), with no options: it is idempotent, and keeps the settings of earlier
# runs. It overwrites every file it installs (the inventory and known_hosts
# of /etc/banpush among them); authorized_keys keeps its other lines.
#
# Options. The host keeps them in /etc/banpush/setup-host.conf, which every
# run shows: a run without an option keeps its setting, a run with one
# changes it (and shows what changed). Give the same ones on every host, so
# that the authorized_keys line is the same everywhere:
#   --fleet DIR          the fleet directory (default: the directory that
#                        holds the contrib/ this script is in)
#   --certs              read this host's certificates from stdin
#   --allow-unban        let every host of the fleet lift bans here ('banpush
#                        unban' on it; a compromised host could then lift bans
#                        fleet-wide); --no-allow-unban turns it off (the
#                        default)
#   --allow-private      receive and push private addresses (a LAN's
#                        attackers); --no-allow-private turns it off (the
#                        default)
#   --from CIDR          accept pushing hosts only from these addresses
#                        (comma-separated; sshd's from=); the receiver then
#                        never bans them either. --from "" removes it
#   --jails "J1 J2"      the jails whose bans are pushed (default: sshd; ""
#                        for none)
#   --ignoreip "A B"     more addresses for ignoreip (your admins'), besides the
#                        peers' and those already in force; "" for none
#   --detect             fleet detection (docs/detection.md): every host's
#                        failures count here, the banpush-fleet jail bans an
#                        address that failed 10 times on 3 hosts within 1h,
#                        and banpush-report-failures reports this host's
#                        failures of the --jails; --detect-policy "T K W"
#                        sets other numbers; --no-detect turns it off (the
#                        default)
#   --drop-other-cas     remove from the account's authorized_keys the lines
#                        of every user CA but user_ca.pub (the end of a CA
#                        rotation, once every host has a new certificate)
#
# Nothing is installed before everything is checked: the fleet's files (the
# inventory with 'banpush peers', the CA keys, known_hosts and the KRL with
# ssh-keygen, the certificates), the authorized_keys line ('banpush authorize
# --dry-run'), sshd's configuration (sshd -t) and fail2ban's
# (fail2ban-client -t). If anything fails, every file of /etc the run
# replaced is put back and every file it added removed, nothing is reloaded,
# and it exits 1.
#
# Nothing secret passes through the command line or leaves the host.
set -eu

prog=setup-host.sh
say() { printf '%s\n' "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
hint() { printf '%s: hint: %s\n' "$prog" "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
contrib=$(cd "$here/.." && pwd)
fleet=$(cd "$contrib/.." && pwd)
certs=no
drop_other_cas=no
# The settings given on the command line: opt_X, and given_X=yes.
given=
opt_allow_private= opt_allow_unban= opt_from= opt_jails= opt_ignoreip_extra= opt_detect=

# option NAME VALUE: a setting given on the command line.
option() {
	eval "opt_$1=\$2"
	given="$given $1"
}

while [ $# -gt 0 ]; do
	case $1 in
	--fleet)
		[ $# -ge 2 ] || die "--fleet needs a directory"
		fleet=$(cd "$2" && pwd) || die "--fleet $2: no such directory"
		shift 2
		;;
	--certs) certs=yes && shift ;;
	--drop-other-cas) drop_other_cas=yes && shift ;;
	--allow-private) option allow_private yes && shift ;;
	--no-allow-private) option allow_private no && shift ;;
	--allow-unban) option allow_unban yes && shift ;;
	--no-allow-unban) option allow_unban no && shift ;;
	--from)
		[ $# -ge 2 ] || die "--from needs addresses (\"\" for none)"
		option from "$2" && shift 2
		;;
	--jails)
		[ $# -ge 2 ] || die "--jails needs a list (\"\" for none)"
		option jails "$2" && shift 2
		;;
	--ignoreip)
		[ $# -ge 2 ] || die "--ignoreip needs addresses (\"\" for none)"
		option ignoreip_extra "$2" && shift 2
		;;
	--detect) option detect yes && shift ;;
	--no-detect) option detect no && shift ;;
	--detect-policy)
		[ $# -ge 2 ] || die "--detect-policy needs \"FAILURES HOSTS WINDOW\", such as \"10 3 1h\""
		option detect "$2" && shift 2
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
# banpush package's (docs/install.md), whose own copies of the sshd,
# fail2ban, logrotate and systemd files are left as it installed them, so
# that its upgrades keep working; the rest is done the same way.
bin=/usr/local/bin/banpush
packaged=no
if [ ! -x "$bin" ] && { dpkg-query -W -f='${Status}' banpush 2>/dev/null | grep -q ' ok installed$' ||
	rpm -q banpush >/dev/null 2>&1; }; then
	packaged=yes
	bin=$(command -v banpush) || die "the banpush package is installed, but banpush is not on PATH"
fi
[ -x "$bin" ] || die "$bin not found: install banpush first (docs/install.md)"
for f in user_ca.pub host_ca.pub peers known_hosts banpush_revoked.krl; do
	[ -f "$fleet/$f" ] || die "$fleet/$f not found: is $fleet the fleet directory? (--fleet DIR)"
done
for f in sshd/setup-receiver.sh sshd/banpush.conf fail2ban/filter.d/banpush.conf \
	fail2ban/jail.d/banpush.conf fail2ban/action.d/banpush.conf; do
	[ -f "$contrib/$f" ] || die "$contrib/$f not found: copy banpush's whole contrib/ directory"
done

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

# Every file of /etc the run changes goes in through stage, which keeps a
# copy of what each replaces. Until commit, after every check has passed,
# any failure puts the previous files back (rollback, also run on exit):
# nothing the checks refused is left in place, nor for the next restart or
# reboot to load.
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

# f2b ARGS...: fail2ban-client, without the warning Debian 12's fail2ban
# prints at every start of it ("'allowipv6' not defined in 'Definition'":
# its fail2ban.conf lacks the option, whose default, auto, applies).
f2b() {
	f2b_rc=0
	fail2ban-client "$@" 2>"$tmp/f2b.err" || f2b_rc=$?
	grep -v "WARNING 'allowipv6' not defined in 'Definition'" "$tmp/f2b.err" >&2 || true
	return $f2b_rc
}

# fingerprint FILE: the SHA256 fingerprint of a public key file.
fingerprint() { ssh-keygen -l -f "$1" | awk '{ print $2; exit }'; }

# peer_names FILE: the names of the peers of an inventory, one a line;
# fails if the inventory does not load.
peer_names() {
	"$bin" --inventory "$1" peers list --json 2>/dev/null >"$tmp/peers.json" || return 1
	sed -n 's/^ *"name": "\([A-Za-z0-9._-]*\)",\{0,1\}$/\1/p' "$tmp/peers.json"
}

user_key=/etc/banpush/id_ed25519
host_key=/etc/ssh/ssh_host_ed25519_key
krl=/etc/ssh/banpush_revoked.krl
log=/var/log/banpush/received.log
settings=/etc/banpush/setup-host.conf
[ -f "$host_key.pub" ] || die "$host_key.pub not found: sshd's ed25519 host key (ssh-keygen -A makes it)"

# The settings: the file's, then the options given here. A run without
# options changes nothing the previous runs set.
allow_private=no
allow_unban=no
from=
jails=sshd
ignoreip_extra=
detect=no
if [ -f "$settings" ]; then
	n=0
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		case $line in '' | '#'*) continue ;; esac
		key=${line%% *}
		value=
		[ "$key" = "$line" ] || value=${line#* }
		case $key in
		allow-private) allow_private=$value ;;
		allow-unban) allow_unban=$value ;;
		from) from=$value ;;
		jails) jails=$value ;;
		ignoreip) ignoreip_extra=$value ;;
		detect) detect=$value ;;
		*) die "$settings: line $n: unknown setting (allow-private, allow-unban, from, jails, ignoreip, detect); fix it, or remove the file and give every option" ;;
		esac
	done <"$settings"
elif [ -f /etc/ssh/sshd_config.d/banpush-fleet.conf ] && [ -z "$given" ]; then
	# Set up by a version of this script that kept no settings: what it
	# was given then is not known here, and the defaults could take away
	# from=, --allow-unban, --allow-private or an admin's address.
	die "this host was set up by an earlier setup-host.sh, which kept no settings: run it once more with the options of its first run (--allow-unban, --allow-private, --from, --jails, --ignoreip; --no-allow-unban if it had none), and it keeps them in $settings from then on"
fi
previous_detect=$detect
for k in $given; do
	eval "$k=\$opt_$k"
done
# --detect keeps the numbers a previous run set; the first one, the defaults.
if [ "$detect" = yes ]; then
	case $previous_detect in yes | no) detect="10 3 1h" ;; *) detect=$previous_detect ;; esac
fi
detect_args=
if [ "$detect" != no ]; then
	set -f
	# shellcheck disable=SC2086 # split into the three numbers
	set -- $detect
	set +f
	bad="--detect-policy: three numbers, FAILURES HOSTS WINDOW, such as \"10 3 1h\" (got \"$detect\")"
	[ $# -eq 3 ] || die "$bad"
	case $1 in '' | *[!0-9]*) die "$bad" ;; esac
	case $2 in '' | *[!0-9]*) die "$bad" ;; esac
	case $3 in '' | *[!0-9hms]*) die "$bad" ;; esac
	detect_args="--fleet-failures $1 --fleet-hosts $2 --fleet-window $3"
fi
for v in "$allow_private" "$allow_unban"; do
	case $v in yes | no) ;; *) die "$settings: allow-private and allow-unban are yes or no" ;; esac
done
case $from in *[!0-9A-Fa-f.:/,]*) die "--from: addresses and CIDR prefixes, separated by commas" ;; esac
case $jails in *[!A-Za-z0-9._\ -]*) die "--jails: jail names are letters, digits, '.', '_' and '-'" ;; esac
case $ignoreip_extra in *[!0-9A-Za-z.:/_\ -]*) die "--ignoreip: addresses, CIDR prefixes or names, separated by spaces" ;; esac
for j in $jails; do
	[ "$j" != banpush ] && [ "$j" != banpush-quorum ] && [ "$j" != banpush-fleet ] ||
		die "--jails: never a receiving jail ($j): a received ban would go back to every peer"
done
{
	say "# banpush: the settings of contrib/fleet/setup-host.sh on this host. A run"
	say "# without an option keeps its setting here; a run with one changes it."
	say "allow-private $allow_private"
	say "allow-unban $allow_unban"
	say "from $from"
	say "jails $jails"
	say "ignoreip $ignoreip_extra"
	say "detect $detect"
} >"$tmp/settings"
say "settings of this host ($settings):"
grep -v '^#' "$tmp/settings" | sed 's/^/  /'
if [ -f "$settings" ] && ! cmp -s "$settings" "$tmp/settings"; then
	say "changed from the previous run:"
	diff "$settings" "$tmp/settings" | sed -n 's/^< \([^#]\)/  - \1/p; s/^> \([^#]\)/  + \1/p'
fi

# Check what the fleet directory brings, before anything is installed.
for f in user_ca.pub host_ca.pub; do
	! grep -q -e '-----BEGIN' "$fleet/$f" || die "$fleet/$f holds a private key: the CA's private key never leaves the CA machine"
	ssh-keygen -l -f "$fleet/$f" >/dev/null 2>&1 || die "$fleet/$f is not a public key (ssh-keygen -l cannot read it)"
done
ssh-keygen -Q -l -f "$fleet/banpush_revoked.krl" >/dev/null 2>&1 ||
	die "$fleet/banpush_revoked.krl is not a KRL (ssh-keygen -k makes one): sshd would refuse every key of the account"
n=0
while IFS= read -r line || [ -n "$line" ]; do
	n=$((n + 1))
	case $line in '' | '#'*) continue ;; esac
	set -f
	# shellcheck disable=SC2086 # split into the line's fields
	set -- $line
	set +f
	case $1 in @cert-authority | @revoked) shift ;; esac
	[ $# -ge 3 ] && printf '%s %s\n' "$2" "$3" | ssh-keygen -l -f - >/dev/null 2>&1 ||
		die "$fleet/known_hosts: line $n is not a known_hosts line ([@cert-authority|@revoked] HOSTS KEYTYPE KEY)"
done <"$fleet/known_hosts"
if ! "$bin" --inventory "$fleet/peers" peers list >/dev/null 2>"$tmp/peers.err"; then
	cat "$tmp/peers.err" >&2
	die "the fleet's inventory $fleet/peers does not load (above): nothing was installed; fix it on the CA machine, copy it again and run this again"
fi
peers_ignoreip=$("$bin" --inventory "$fleet/peers" peers ignoreip 2>"$tmp/peers.err") || {
	cat "$tmp/peers.err" >&2
	die "'banpush peers ignoreip' cannot list the addresses of the fleet's inventory (above): nothing was installed; a host whose name does not resolve could be banned"
}

# The certificates from the CA machine, checked now and installed with
# the rest. Never prints what it read, only what ssh-keygen made of it.
user_cert=
host_cert=
check_cert() {
	info=$(ssh-keygen -L -f "$1" 2>/dev/null) || die "a line on stdin is not an OpenSSH certificate"
	type=$(say "$info" | sed -n 's/^ *Type: [^ ]* \([a-z]*\) certificate$/\1/p')
	key=$(say "$info" | sed -n 's/^ *Public key: [^ ]* \(SHA256:[^ ]*\)$/\1/p')
	ca=$(say "$info" | sed -n 's/^ *Signing CA: [^ ]* \(SHA256:[^ ]*\) .*$/\1/p')
	id=$(say "$info" | sed -n 's/^ *Key ID: "\(.*\)"$/\1/p')
	valid=$(say "$info" | sed -n 's/^ *Valid: //p')
	case $type in
	user)
		[ -f "$user_key.pub" ] || die "a user certificate, but no pushing key $user_key.pub here: run this without --certs first"
		[ "$key" = "$(fingerprint "$user_key.pub")" ] || die "the user certificate is not for this host's pushing key $user_key.pub: sign FLEET/keys/id_ed25519.pub of this host"
		[ "$ca" = "$(fingerprint "$fleet/user_ca.pub")" ] || die "the user certificate is not signed by the fleet's user CA (user_ca.pub)"
		case $id in
		'' | *[!A-Za-z0-9._-]*) die "the user certificate's key ID is not a peer name (1 to 64 of A-Za-z0-9._-): sign with -I HOSTNAME" ;;
		esac
		[ ${#id} -le 64 ] || die "the user certificate's key ID is longer than 64 characters"
		user_cert=$1
		say "user certificate: peers will log this host as peer=$id; valid $valid"
		;;
	host)
		[ "$key" = "$(fingerprint "$host_key.pub")" ] || die "the host certificate is not for this host's key $host_key.pub: sign FLEET/keys/ssh_host_ed25519_key.pub of this host"
		[ "$ca" = "$(fingerprint "$fleet/host_ca.pub")" ] || die "the host certificate is not signed by the fleet's host CA (host_ca.pub)"
		host_cert=$1
		say "host certificate: key ID $id; valid $valid"
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
		check_cert "$tmp/cert$n.pub"
	done
	[ $n -gt 0 ] || die "--certs: no certificate on stdin (cat HOST/*-cert.pub | ssh root@HOST sh $0 --certs)"
fi
# sshd's HostCertificate: the new one, or the one installed before, if it
# is still for this host's key.
[ -n "$host_cert" ] || [ ! -f "$host_key-cert.pub" ] || host_cert_old=$host_key-cert.pub
if [ -n "${host_cert_old:-}" ]; then
	[ "$(ssh-keygen -L -f "$host_cert_old" | sed -n 's/^ *Public key: [^ ]* \(SHA256:[^ ]*\)$/\1/p')" = "$(fingerprint "$host_key.pub")" ] ||
		die "$host_key-cert.pub is not for $host_key.pub (new host keys?): sign the new key and run with --certs"
fi

# The peers new in the inventory, for the hint at the end: they need the
# bans this host's jails hold now ('banpush sync').
new_peers=
if [ -f /etc/banpush/peers ] && old_names=$(peer_names /etc/banpush/peers) && new_names=$(peer_names "$fleet/peers"); then
	old_names=" $(printf '%s\n' "$old_names" | tr '\n' ' ') "
	for p in $new_names; do
		case $old_names in *" $p "*) ;; *) new_peers="${new_peers:+$new_peers }$p" ;; esac
	done
fi

# The pushing key: made here, once; only its public half leaves the host.
install -d -m 0700 /etc/banpush
if [ ! -f "$user_key" ]; then
	ssh-keygen -q -t ed25519 -N '' -C "banpush@$(hostname -s)" -f "$user_key"
	say "made the pushing key $user_key"
fi

# The receiving account and its one line: every key the user CA signed for
# the principal banpush, named after its certificate's key ID. The
# account's home and ~/.ssh are directories it can change: nothing here
# touches them by path. setup-receiver.sh makes the account (once) and
# runs 'banpush setup-account', and 'banpush authorize --install' writes
# the line, both through descriptors. The line is checked now (--dry-run)
# and written after every other check.
BANPUSH_BIN=$bin sh "$contrib/sshd/setup-receiver.sh" >/dev/null
home=$(getent passwd banpush | cut -d: -f6)
[ -n "$home" ] || die "no home directory for the account banpush"
# The arguments of authorize, kept in "$@" until its --install below.
set -- --cert-authority "$fleet/user_ca.pub" --log "$log"
[ "$allow_private" = no ] || set -- "$@" --allow-private
[ "$allow_unban" = no ] || set -- "$@" --allow-unban
[ -z "$from" ] || set -- "$@" --from "$from"
# shellcheck disable=SC2086 # the policy's flags and numbers, checked above
[ -z "$detect_args" ] || set -- "$@" $detect_args
# Other user CAs the account trusts (the old CA of a rotation, whose line
# --install does not replace): authorize warns about each, and with
# --drop-other-cas removes their lines in the same rewrite of the file.
[ $drop_other_cas = no ] || set -- "$@" --drop-other-cas
"$bin" authorize "$@" --install "$home/.ssh/authorized_keys" --dry-run 2>"$tmp/authorize.out" || {
	cat "$tmp/authorize.out" >&2
	die "the line for $home/.ssh/authorized_keys cannot be installed (above): nothing was installed"
}

# The fleet's files and the certificates.
stage 0644 "$fleet/user_ca.pub" /etc/banpush/user_ca.pub
stage 0644 "$fleet/host_ca.pub" /etc/banpush/host_ca.pub
stage 0600 "$fleet/peers" /etc/banpush/peers
stage 0644 "$fleet/known_hosts" /etc/banpush/known_hosts
stage 0644 "$fleet/banpush_revoked.krl" "$krl"
[ -z "$user_cert" ] || stage 0644 "$user_cert" "$user_key-cert.pub"
[ -z "$host_cert" ] || stage 0644 "$host_cert" "$host_key-cert.pub"
stage 0600 "$tmp/settings" "$settings"

# sshd: the account's settings (ExposeAuthInfo: the receiver reads the
# certificate sshd verified), the KRL, and the host certificate.
install -d -m 0755 /etc/ssh/sshd_config.d
stage_contrib sshd/banpush.conf /etc/ssh/sshd_config.d/banpush.conf
{
	say "# Written by banpush's contrib/fleet/setup-host.sh: run it again to change it."
	[ ! -f "$host_key-cert.pub" ] || say "HostCertificate $host_key-cert.pub"
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
[ "$allow_private" = no ] || pushargs='[pushargs="--allow-private"]'
{
	say "# Written by banpush's contrib/fleet/setup-host.sh: the jails whose bans are pushed."
	for j in $jails; do
		printf '[%s]\naction = %%(action_)s\n         banpush%s\n\n' "$j" "$pushargs"
	done
} >"$tmp/push.local"
stage 0644 "$tmp/push.local" /etc/fail2ban/jail.d/banpush-push.local
# Fleet detection: the fleet jail and its filter are always in place; the
# jail runs where --detect is on.
stage_contrib fail2ban/filter.d/banpush-fleet.conf /etc/fail2ban/filter.d/banpush-fleet.conf
stage_contrib fail2ban/jail.d/banpush-fleet.conf /etc/fail2ban/jail.d/banpush-fleet.conf
fleet_jail=false
[ "$detect" = no ] || fleet_jail=true
printf '# Written by banpush'"'"'s contrib/fleet/setup-host.sh (--detect).\n[banpush-fleet]\nenabled = %s\n' "$fleet_jail" >"$tmp/fleet.local"
stage 0644 "$tmp/fleet.local" /etc/fail2ban/jail.d/banpush-fleet.local

# The ignoreip in force without this script's snippet (jail.local's,
# another file's, or fail2ban's default), as the banpush jail sees it: the
# snippet is read after jail.local and replaces it, so its addresses go
# into the snippet too.
cp -R /etc/fail2ban "$tmp/fail2ban"
rm -f "$tmp/fail2ban/jail.d/00-banpush-ignoreip.local"
f2b -c "$tmp/fail2ban" -d >"$tmp/f2b.dump" 2>&1 || {
	cat "$tmp/f2b.dump" >&2
	refuse "fail2ban-client -d could not read the configuration (above): the previous files are back and fail2ban was not reloaded; fix it, then run this again"
}
grep -q "^\['add', 'banpush', " "$tmp/f2b.dump" ||
	warn "fail2ban-client -d shows no banpush jail: the ignoreip in force is unknown, and only the addresses of the peers and of --ignoreip go into /etc/fail2ban/jail.d/00-banpush-ignoreip.local"
current=$(sed -n "s/^\['set', 'banpush', 'addignoreip', \(.*\)\]\$/\1/p" "$tmp/f2b.dump" | tr -d "'," | tr '\n' ' ')
set -f
ignoreip=
kept=
for a in $peers_ignoreip $ignoreip_extra; do
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
	for section in DEFAULT banpush banpush-quorum banpush-fleet; do
		printf '[%s]\nignoreip = %s\n\n' "$section" "$ignoreip"
	done
} >"$tmp/ignoreip.local"
stage 0644 "$tmp/ignoreip.local" /etc/fail2ban/jail.d/00-banpush-ignoreip.local
f2b -t >"$tmp/f2b.out" 2>&1 || {
	cat "$tmp/f2b.out" >&2
	refuse "fail2ban-client -t refused the configuration with banpush's files (above): the previous files are back and nothing was reloaded; fix it, then run this again"
}

# Every check passed: the authorized_keys line, the last file that can
# fail, then keep everything.
"$bin" authorize "$@" --install "$home/.ssh/authorized_keys" ||
	refuse "the authorized_keys line was not installed (above): the previous files are back and nothing was reloaded"
commit

[ ! -d /etc/logrotate.d ] || put_contrib logrotate.d/banpush /etc/logrotate.d/banpush
# The reporter of fleet detection follows the pushing jails, with the
# fleet policy.
report="$bin report-failures"
for j in $jails; do report="$report --jail $j"; done
[ "$allow_private" = no ] || report="$report --allow-private"
[ -z "$detect_args" ] || report="$report $detect_args"
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
	put_contrib systemd/banpush-report-failures.service /etc/systemd/system/banpush-report-failures.service
	install -d -m 0755 /etc/systemd/system/banpush-report-failures.service.d
	printf '# Written by banpush'"'"'s contrib/fleet/setup-host.sh (--detect).\n[Service]\nExecStart=\nExecStart=%s\n' "$report" \
		>/etc/systemd/system/banpush-report-failures.service.d/setup-host.conf
fi

# Reload what runs.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now banpush-flush.timer >/dev/null 2>&1
	systemctl enable --now banpush-apply-unbans.path banpush-apply-unbans.timer >/dev/null 2>&1
	if [ "$detect" = no ]; then
		systemctl disable --now banpush-report-failures.service >/dev/null 2>&1 || true
	else
		systemctl enable banpush-report-failures.service >/dev/null 2>&1
		systemctl restart banpush-report-failures.service
	fi
	if systemctl is-active --quiet ssh; then
		systemctl reload ssh
	elif systemctl is-active --quiet sshd; then
		systemctl reload sshd
	fi
else
	if [ "$allow_unban" = yes ]; then
		warn "systemd is not running here: nothing enabled the flush timer (banpush-flush.timer) nor apply-unbans (banpush-apply-unbans.path)"
		hint "run '$bin flush' as root every minute some other way (cron: * * * * * root $bin flush), and keep '$bin apply-unbans --follow' running as root (your service manager starts it at boot), or the unbans peers send are never applied"
	else
		warn "systemd is not running here: nothing enabled the flush timer (banpush-flush.timer)"
		hint "run '$bin flush' as root every minute some other way (cron: * * * * * root $bin flush), or bans queued while a peer was down wait for the next ban"
	fi
	[ "$detect" = no ] ||
		hint "keep '$report' running as root (your service manager starts it at boot), or this host's failures count nowhere"
	if [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
		kill -HUP "$(cat /run/sshd.pid)"
	else
		say "sshd is not running: it reads the new settings when it starts"
	fi
fi
if f2b ping >/dev/null 2>&1; then
	f2b reload >/dev/null
	# A reload drops an action newly added to a running jail (fail2ban
	# 1.0.2): restart each pushing jail so that it loads the banpush action.
	for j in $jails; do
		f2b reload --restart "$j" >/dev/null
	done
else
	say "fail2ban is not running: it reads the new settings when it starts"
fi

# What the CA machine signs: this host's two public keys.
install -d -m 0755 "$fleet/keys"
install -m 0644 "$user_key.pub" "$fleet/keys/id_ed25519.pub"
install -m 0644 "$host_key.pub" "$fleet/keys/ssh_host_ed25519_key.pub"

"$bin" peers list
for p in $new_peers; do
	hint "$p is new in the inventory: once it has its certificates ('banpush peers check $p' says ok), run 'banpush sync $p' here, and on every other host that was in the fleet before it: each host sends the bans its own jails hold (docs/operations.md#catching-up-a-new-or-returning-host-banpush-sync)"
done
if [ -f "$user_key-cert.pub" ] && [ -f "$host_key-cert.pub" ]; then
	say "done; once the other hosts are set up, 'banpush peers check' should say ok for each"
else
	say "done; now sign $fleet/keys/*.pub on the CA machine and run this again with --certs (docs/fleet.md)"
fi
