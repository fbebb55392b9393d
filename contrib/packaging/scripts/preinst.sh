#!/bin/sh
# banpush package: before its files are unpacked (deb preinst install or
# upgrade; rpm %pre, $1 = 1 on install, 2 on upgrade).
#
# Makes what must exist before the package's files land, only where it is
# missing, so that an upgrade changes nothing an administrator set:
#   - the system account banpush (home /var/lib/banpush, shell /bin/sh:
#     sshd runs the forced command through the login shell), with the
#     password '*', which no password matches: only keys log in, each
#     pinned by authorized_keys to 'banpush receive'. Not '!': without PAM,
#     sshd refuses even key logins to a locked account. The password is set
#     only when the account is made: an administrator who locks it later
#     keeps it locked across upgrades.
#   - /var/log/banpush/received.log, where /var/log/banpush does not exist
#     yet, before the receiving jail's file lands in /etc/fail2ban/jail.d:
#     fail2ban on Debian 12 refuses to start with a jail whose log is
#     missing, and a fail2ban installed in the same transaction starts
#     before this package is configured. The directory stays root's alone
#     until the log in it is append-only, as 'banpush setup-account' makes
#     it;
#   - /var/spool/banpush and /etc/banpush, 0700 root: the queue, the
#     inventory and the pushing key. Where they exist already (a source
#     install's, or made by hand with mkdir: 0755), their mode is made
#     0700 on every install and upgrade: group and others have no business
#     reading the queue or the key, nor writing either.
# Nothing here works in a directory the account can change: the account's
# home, ~/.ssh and authorized_keys, and an existing log directory, are left
# to 'banpush setup-account', which postinst runs with the new binary and
# which works through descriptors only.
# Starts nothing: the jail's log stays empty until a peer is authorized.
set -e

case $1 in
install | upgrade | 1 | 2) ;;
*) exit 0 ;;
esac

user=banpush
home=/var/lib/banpush
logdir=/var/log/banpush

if ! getent passwd "$user" >/dev/null; then
	useradd --system --user-group --home-dir "$home" --no-create-home \
		--shell /bin/sh --comment "banpush receiver" "$user"
	usermod -p '*' "$user"
fi

group=adm
getent group "$group" >/dev/null || group=$user

if [ ! -e "$logdir" ] && [ ! -L "$logdir" ]; then
	# /var/log is root's: the new directory is root's alone (0700) until
	# the log in it is append-only; then the account's group may add its
	# state files beside it.
	install -d -m 0700 "$logdir"
	install -m 0640 -o "$user" -g "$group" /dev/null "$logdir/received.log"
	chattr +a "$logdir/received.log" 2>/dev/null || true
	chown "root:$user" "$logdir"
	chmod 1771 "$logdir"
fi
for d in /var/spool/banpush /etc/banpush; do
	if [ -L "$d" ]; then
		echo "banpush: warning: $d is a symbolic link: its mode was left as it is; make it a directory of root's, mode 0700" >&2
	elif [ -d "$d" ]; then
		chmod 0700 "$d"
	else
		install -d -m 0700 "$d"
	fi
done
exit 0
