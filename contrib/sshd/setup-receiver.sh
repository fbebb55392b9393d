#!/bin/sh
# Set up the account that receives bans on this host. Run as root, once.
# BANPUSH_USER, BANPUSH_HOME and BANPUSH_LOGDIR change the account name
# (banpush), its home (/var/lib/banpush) and the log directory
# (/var/log/banpush).
#
# The account needs a real shell: sshd runs the forced command from
# authorized_keys through it. Its password is '*' (not '!'): without PAM,
# sshd refuses even key logins to a locked account. It has no password,
# so only the keys in its authorized_keys, each pinned to
# 'banpush receive', can log in.
set -eu

user=${BANPUSH_USER:-banpush}
home=${BANPUSH_HOME:-/var/lib/banpush}
logdir=${BANPUSH_LOGDIR:-/var/log/banpush}

if ! id "$user" >/dev/null 2>&1; then
	useradd --system --home-dir "$home" --create-home --shell /bin/sh \
		--comment "banpush receiver" "$user"
fi
usermod -p '*' "$user"

install -d -m 0750 -o "$user" -g adm "$logdir"
[ -e "$logdir/received.log" ] || install -m 0640 -o "$user" -g adm /dev/null "$logdir/received.log"

install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
[ -e "$home/.ssh/authorized_keys" ] || install -m 0600 -o "$user" -g "$user" /dev/null "$home/.ssh/authorized_keys"

echo "receiver account $user ready; add each pushing peer with:"
echo "  banpush authorize --peer NAME --log $logdir/received.log --from ADDRESS_OF_NAME --install $home/.ssh/authorized_keys NAME.pub"
echo "then check this host with: banpush doctor --account $user"
