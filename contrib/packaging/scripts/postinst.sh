#!/bin/sh
# banpush package: after its files are in place (deb postinst configure;
# rpm %post). Enables and starts nothing: the flush timer is for a host that
# pushes, once /etc/banpush/peers exists (README, Setup step 11), and the
# receiving jail and the sshd settings take effect when the administrator
# reloads fail2ban and sshd. systemd only rereads the unit files.
set -e

case $1 in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
