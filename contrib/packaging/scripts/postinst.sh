#!/bin/sh
# banpush package: after its files are in place (deb postinst configure;
# rpm %post).
#
# Runs 'banpush setup-account', the new binary's: it makes, or mends, the
# account's home, ~/.ssh and an empty authorized_keys (nobody can push here
# until 'banpush authorize --install' adds a key), and the received log:
# append-only, in a directory of root's, taking over the account's log
# directory of earlier versions. It works through descriptors only: the
# home and ~/.ssh are the account's, and root must not follow a link it
# made there. Where it refuses (a link where ~/.ssh should be, say), the
# package still installs, with a warning that says what to fix.
#
# Enables and starts nothing: the flush timer is for a host that pushes,
# once /etc/banpush/peers exists (docs/setup.md#step-11), and the
# receiving jail and the sshd settings take effect when the administrator
# reloads fail2ban and sshd. systemd only rereads the unit files.
set -e

case $1 in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

if ! banpush setup-account; then
	echo "banpush: warning: 'banpush setup-account' did not finish (above): fix what it names, then run it again" >&2
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
