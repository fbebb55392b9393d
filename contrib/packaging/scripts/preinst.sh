#!/bin/sh
# banpush package: before its files are unpacked (deb preinst install or
# upgrade; rpm %pre, $1 = 1 on install, 2 on upgrade).
#
# Makes what contrib/sshd/setup-receiver.sh and the README's setup make by
# hand, only where it is missing, so that an upgrade changes nothing an
# administrator set:
#   - the system account banpush (home /var/lib/banpush, shell /bin/sh:
#     sshd runs the forced command through the login shell), with the
#     password '*', which no password matches: only keys log in, each
#     pinned by authorized_keys to 'banpush receive'. Not '!': without PAM,
#     sshd refuses even key logins to a locked account. The password is set
#     only when the account is made: an administrator who locks it later
#     keeps it locked across upgrades.
#   - ~banpush/.ssh/authorized_keys (0600, empty: nobody can push here
#     until 'banpush authorize --install' adds a key);
#   - /var/log/banpush/received.log (0640, banpush:adm), before the
#     receiving jail's file lands in /etc/fail2ban/jail.d: fail2ban on
#     Debian 12 refuses to start with a jail whose log is missing, and a
#     fail2ban installed in the same transaction starts before this
#     package is configured;
#   - /var/spool/banpush and /etc/banpush, 0700 root: the queue, the
#     inventory and the pushing key.
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

[ -d "$home" ] || install -d -m 0750 -o "$user" -g "$user" "$home"
[ -d "$home/.ssh" ] || install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
[ -e "$home/.ssh/authorized_keys" ] || install -m 0600 -o "$user" -g "$user" /dev/null "$home/.ssh/authorized_keys"
[ -d "$logdir" ] || install -d -m 0750 -o "$user" -g "$group" "$logdir"
[ -e "$logdir/received.log" ] || install -m 0640 -o "$user" -g "$group" /dev/null "$logdir/received.log"
[ -d /var/spool/banpush ] || install -d -m 0700 /var/spool/banpush
[ -d /etc/banpush ] || install -d -m 0700 /etc/banpush
exit 0
