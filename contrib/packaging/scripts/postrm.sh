#!/bin/sh
# banpush package: after its files are gone (deb postrm remove or purge;
# rpm %postun, $1 = 0 on erase, 1 on upgrade).
#
# remove (and rpm's erase) keeps the data: the account and its
# authorized_keys, the spool, the received log, /etc/banpush (inventory,
# keys, known_hosts), and dpkg keeps the configuration files.
#
# purge removes what this package made: the account, /var/lib/banpush,
# /var/spool/banpush, /var/log/banpush, /etc/banpush, the state of
# 'banpush firewall' (/var/lib/banpush-firewall) and its kernel set (the
# nftables table inet banpush, with the nft CLI, the binary being gone),
# and the links that 'systemctl enable' made for its timers; dpkg removes
# the configuration
# files. Files an administrator wrote elsewhere (jail.d/*.local, the
# fleet's sshd_config.d/banpush-fleet.conf and KRL) are left.
set -e

case $1 in
purge) ;;
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	exit 0
	;;
*) exit 0 ;;
esac

for link in /etc/systemd/system/*.wants/banpush-*; do
	if [ -L "$link" ]; then
		rm -f "$link"
	fi
done
# The received log is append-only: nobody may remove it, root included,
# until the attribute is lifted. /var/log/banpush is root's, and the
# account can neither rename nor replace an append-only file, so the name
# is the log (chattr does not follow a link anyway).
if [ -f /var/log/banpush/received.log ] && [ ! -L /var/log/banpush/received.log ]; then
	chattr -a /var/log/banpush/received.log 2>/dev/null ||
		echo "banpush: /var/log/banpush/received.log may stay append-only: lift it with chattr -a (e2fsprogs), then remove /var/log/banpush" >&2
fi
rm -rf /var/spool/banpush /var/log/banpush /var/lib/banpush /etc/banpush /var/lib/banpush-firewall
# The fast path's kernel set: its bans would otherwise stay until they run
# out, or until the next boot.
if command -v nft >/dev/null 2>&1; then
	if nft list table inet banpush >/dev/null 2>&1; then
		nft delete table inet banpush || echo "banpush: could not remove the nftables table inet banpush: nft delete table inet banpush" >&2
	fi
fi
if getent passwd banpush >/dev/null; then
	userdel banpush || echo "banpush: could not remove the account banpush (does a process of it run?): userdel banpush" >&2
fi
if getent group banpush >/dev/null; then
	groupdel banpush || echo "banpush: could not remove the group banpush: groupdel banpush" >&2
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
