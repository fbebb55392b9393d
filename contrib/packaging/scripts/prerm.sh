#!/bin/sh
# banpush package: before its files go (deb prerm remove; rpm %preun, $1 =
# 0 on erase, 1 on upgrade). On removal, stops the timers and services an
# administrator started, so that none runs a binary that is gone; an
# upgrade leaves them running (the next run uses the new binary).
set -e

case $1 in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop banpush-flush.timer banpush-flush.service \
		banpush-metrics.timer banpush-metrics.service \
		banpush-apply-unbans.path banpush-apply-unbans.timer \
		banpush-apply-unbans.service \
		banpush-report-failures.service \
		banpush-firewall.service >/dev/null 2>&1 || true
fi
exit 0
