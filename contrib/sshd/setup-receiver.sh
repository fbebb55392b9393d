#!/bin/sh
# Set up the account that receives bans on this host. Run as root, once
# or again (contrib/fleet/setup-host.sh runs it on every run).
# BANPUSH_USER, BANPUSH_HOME and BANPUSH_LOGDIR change the account name
# (banpush), its home (/var/lib/banpush) and the log directory
# (/var/log/banpush); BANPUSH_BIN the banpush binary (/usr/local/bin/banpush,
# else the one on PATH).
#
# The account needs a real shell: sshd runs the forced command from
# authorized_keys through it. Its password is '*' (not '!'): without PAM,
# sshd refuses even key logins to a locked account. It has no password,
# so only the keys in its authorized_keys, each pinned to
# 'banpush receive', can log in.
#
# This script only makes the account. Its home, ~/.ssh, authorized_keys
# and the received log are made by 'banpush setup-account', which works
# through descriptors: the home and ~/.ssh are the account's, and a shell
# running as root would follow any link the account put there.
set -eu

user=${BANPUSH_USER:-banpush}
home=${BANPUSH_HOME:-/var/lib/banpush}
logdir=${BANPUSH_LOGDIR:-/var/log/banpush}
bin=${BANPUSH_BIN:-/usr/local/bin/banpush}
if [ ! -x "$bin" ]; then
	bin=$(command -v banpush) || {
		echo "setup-receiver.sh: error: banpush not found: install it first (docs/install.md)" >&2
		exit 1
	}
fi

if ! id "$user" >/dev/null 2>&1; then
	useradd --system --user-group --home-dir "$home" --no-create-home --shell /bin/sh \
		--comment "banpush receiver" "$user"
fi
usermod -p '*' "$user"

"$bin" setup-account --account "$user" --log "$logdir/received.log"

echo "receiver account $user ready; add each pushing peer with:"
echo "  banpush authorize --peer NAME --log $logdir/received.log --from ADDRESS_OF_NAME --install $(getent passwd "$user" | cut -d: -f6)/.ssh/authorized_keys NAME.pub"
echo "then check this host with: banpush doctor --account $user"
