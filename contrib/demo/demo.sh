#!/usr/bin/env bash
# banpush, end to end, on one machine: three hosts (or N, 2 to 20, with
# --hosts N) and an attacker, each in its own network namespace on a
# private bridge, each host with its own real sshd, fail2ban, iptables and
# banpush, set up from the files in contrib/. The attacker brute-forces SSH
# on host 1; host 1's fail2ban bans it and pushes the ban; the other hosts
# receive it and ban it in their own iptables. Host I is hI at 10.77.0.(10+I);
# the attacker is at 10.77.0.66.
#
# Run as root on Debian 12 with Go, from anywhere:
#
#   sudo contrib/demo/demo.sh
#
# It installs what is missing (openssh-server, fail2ban, iptables, iproute2)
# without starting their services, builds banpush into a temporary
# directory, runs the demo, and removes everything it made, even when it
# fails or is interrupted.
#
# What it leaves alone: the machine's own network, firewall and
# configuration. Each host sees a private copy of /etc, /var, /run,
# /usr/local and /root (an overlay in its own mount namespace, kept in the
# temporary directory), so every host is set up with the default paths a
# real server uses (/etc/banpush/peers, /var/spool/banpush,
# /var/log/banpush/received.log, /etc/fail2ban, /usr/local/bin/banpush)
# without touching the real ones. All traffic stays on 10.77.0.0/24 inside
# the namespaces.
#
# With --fleet, the hosts are set up the certificate way (docs/fleet.md):
# a user CA and a host CA made in the demo's directory, each host's
# pushing key and sshd host key signed, one authorized_keys line, one
# inventory and one known_hosts line, the same on every host, all installed
# by contrib/fleet/setup-host.sh; nobody confirms a host key.
#
# With --detect, the hosts detect a brute force spread over the fleet
# (docs/detection.md): each host's sshd jail bans at 5 failures in 10
# minutes, every host authorizes every other with the fleet policy (banpush
# authorize --fleet-failures T --fleet-hosts K --fleet-window W, 12, 3 and
# 1h unless given; with --fleet, setup-host.sh --detect-policy "T K W"),
# enables the banpush-fleet jail, and runs banpush report-failures with the
# same policy. 'run --detect' spreads T failed logins over the hosts, too
# few on each for its own jail, and every host bans at once.
#
# With --installed, the hosts run the banpush package installed on this
# machine (apt install ./dist/banpush_*.deb; docs/install.md) instead of
# the checkout: /usr/bin/banpush, and the package's fail2ban action, filter
# and jail, sshd settings and account, as its own preinst makes them on
# each host. Nothing is built, and only what docs/setup.md asks of a
# package's user is done by hand; with --fleet, contrib/fleet/setup-host.sh
# finds the package and leaves its files as they are.
#
# Subcommands (the end-to-end test uses them; 'run' is the default):
#   run [OPTIONS]           the whole demo, then tear down
#   up DIR [OPTIONS]        set up the hosts, leave them running
#   attack DIR              brute-force host 1 until it bans
#   spread DIR [--tries N] [--hosts h1,h2,...] [--from ADDR] [--gap SECONDS]
#                           N failed logins (3) on each host in turn, timed
#   on DIR HOST COMMAND...  run a command on a host (h1, h2, ...)
#   down DIR                stop everything, remove DIR
# OPTIONS: [--hosts N] [--fleet] [--installed] [--bin FILE] [--prefix NAME]
#          [--detect [--fleet-failures T] [--fleet-hosts K] [--fleet-window W]]
# With --fleet, DIR/ca holds what the CA machine holds: the CA keys,
# fleet/ as copied to every host, and each host's public keys and
# certificates.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The hosts h1..hN (up --hosts N, 3 by default) are at 10.77.0.11 to
# 10.77.0.(10+N); the attacker is at 10.77.0.66. set_hosts fills these in.
hosts=()
declare -A addr=([atk]=10.77.0.66)
attacker=${addr[atk]}
max_hosts=20
policy_rc= # a policy-rc.d this script made, to remove
installed=no # --installed: the hosts run the installed package

# The package's binary, and the maintainer scripts that make its account,
# directories and received log (contrib/packaging/scripts/preinst.sh and
# postinst.sh, as dpkg keeps them).
pkg_bin=/usr/bin/banpush
pkg_preinst=/var/lib/dpkg/info/banpush.preinst
pkg_postinst=/var/lib/dpkg/info/banpush.postinst

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

# now prints seconds since the epoch with milliseconds.
now() { date +%s.%3N; }
# since T prints seconds elapsed since T, with one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# diff_s A B prints B - A in seconds, with one decimal.
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# ban_time HOST JAIL prints when the jail last banned the attacker, in
# seconds since the epoch, from the host's fail2ban log.
ban_time() {
	local t
	t=$(on "$1" grep -F -- "[$2] Ban $attacker" /var/log/fail2ban.log | tail -n 1 | awk '{ print $1 " " $2 }')
	[[ -n $t ]] || die "no ban of $attacker in the $2 jail of $1"
	date -d "${t/,/.}" +%s.%3N
}

# set_hosts N: the hosts h1..hN, their addresses, and what depends on them.
set_hosts() {
	local n=$1 i
	hosts=()
	for ((i = 1; i <= n; i++)); do
		hosts+=("h$i")
		addr[h$i]=10.77.0.$((10 + i))
	done
	# 10.77.0.0/28 holds up to h5 (.15), /27 up to h20 (.30); neither
	# holds the attacker (.66) or the extra addresses of 'spread --from'
	# (.32 and up).
	if ((10 + n <= 15)); then
		fleet_from=10.77.0.0/28
	else
		fleet_from=10.77.0.0/27
	fi
	fleet_opts=(--allow-private --allow-unban --from "$fleet_from")
}
set_hosts 3

# use_dir DIR: work on the demo that 'up' made in DIR, with its hosts.
use_dir() {
	dir=$1
	[[ ! -s $dir/hosts ]] || set_hosts "$(cat "$dir/hosts")"
}

# and_list WORD... prints "A, B and C".
and_list() {
	local all=("$@") out=${1:-} i
	for ((i = 1; i < $# - 1; i++)); do out+=", ${all[i]}"; done
	(($# < 2)) || out+=" and ${all[$# - 1]}"
	say "$out"
}

need_root() {
	[[ $(id -u) == 0 ]] || die "run as root: it creates network namespaces and firewall rules (sudo $0)"
}

# install_missing installs the Debian packages the demo needs, only if a
# command is missing, without starting their services on this machine.
install_missing() {
	local missing=()
	[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
	command -v ssh >/dev/null || missing+=(openssh-client)
	command -v fail2ban-server >/dev/null || missing+=(fail2ban)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v ip >/dev/null || missing+=(iproute2)
	((${#missing[@]})) || return 0
	step "Installing ${missing[*]}"
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		# Keep apt from starting sshd and fail2ban on this machine. The
		# EXIT trap removes it if apt fails or is interrupted.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy_rc=/usr/sbin/policy-rc.d
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
	[[ -z $policy_rc ]] || rm -f "$policy_rc"
	policy_rc=
	say "installed; their services were not started on this machine"
}

build() {
	local out=$1
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		PATH=/usr/local/go/bin:$PATH
	fi
	command -v go >/dev/null || die "go not found: install Go (https://go.dev/doc/install)"
	(cd "$repo" && go build -o "$out" ./cmd/banpush)
}

# quiet CMD...: run CMD, showing its output only if it fails.
quiet() {
	local out
	out=$("$@" 2>&1) || {
		printf '%s\n' "$out" >&2
		die "failed: $*"
	}
}

# ns_exists NAME: is there a network namespace of exactly this name?
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }

# ns NAME prints the namespace name of a host (h1, h2, h3, atk, net).
ns() { printf '%s-%s' "$(cat "$dir/prefix")" "$1"; }

# on HOST CMD... runs CMD on a host: in its network, mount and UTS
# namespaces, with root's usual PATH (not the caller's: a test puts its own
# banpush first in PATH).
on() {
	local host=$1
	shift
	nsenter -t "$(cat "$dir/$host/pid")" -m -n -u --wd=/ -- \
		env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# make_host HOST: a network namespace with the host's address, and a mount
# namespace (held by a sleeping process) in which /etc, /var, /usr/local and
# /root are overlays written into $dir/HOST and /run is empty.
make_host() {
	local h=$1 n
	n=$(ns "$h")
	ip netns add "$n"
	ip -n "$(ns net)" link add "$h" type veth peer name eth0 netns "$n"
	ip -n "$(ns net)" link set "$h" master br0 up
	ip -n "$n" addr add "${addr[$h]}/24" dev eth0
	ip -n "$n" link set eth0 up
	ip -n "$n" link set lo up
	[[ $h != atk ]] || return 0

	local d=$dir/$h m mounts=
	for m in etc var usr/local root; do
		mkdir -p "$d/${m//\//-}.up" "$d/${m//\//-}.work"
		mounts+="mount -t overlay overlay -o lowerdir=/$m,upperdir=$d/${m//\//-}.up,workdir=$d/${m//\//-}.work /$m && "
	done
	# The anchor process holds the mount namespace; it reports ready once
	# the mounts are in place.
	ip netns exec "$n" unshare --mount --uts --propagation private -- \
		setsid bash -c "$mounts mount -t tmpfs -o mode=0755 tmpfs /run && hostname $h && echo \$\$ >'$d/pid.tmp' && exec sleep infinity" \
		</dev/null >"$d/anchor.log" 2>&1 &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $d/pid.tmp ]] && break
		sleep 0.05
	done
	[[ -s $d/pid.tmp ]] || die "host $h did not start: $(cat "$d/anchor.log")"
	mv "$d/pid.tmp" "$d/pid"
}

# fresh_host HOST: give the host a fresh Debian state, as if openssh-server,
# fail2ban and iptables had just been installed: this machine's local
# settings, keys, logs and ban databases are hidden (in the overlay only).
fresh_host() {
	local h=$1
	on "$h" bash -c '
		set -e
		# The received log of an installed package is append-only.
		chattr -a /var/log/banpush/received.log 2>/dev/null || true
		rm -rf /etc/banpush /var/spool/banpush /var/log/banpush /var/lib/banpush
		rm -f /etc/ssh/ssh_host_* /etc/ssh/sshd_config.d/* /var/log/auth.log
		rm -f /etc/fail2ban/*.local /etc/fail2ban/jail.d/* /etc/fail2ban/fail2ban.d/* \
			/etc/fail2ban/action.d/*.local /etc/fail2ban/filter.d/*.local
		rm -f /var/lib/fail2ban/fail2ban.sqlite3 /var/log/fail2ban.log
		printf "[sshd]\nenabled = true\n" >/etc/fail2ban/jail.d/defaults-debian.conf
		mkdir -p /run/sshd /run/fail2ban
		# No DNS: the hosts know each other from /etc/hosts, and a lookup
		# goes to the host itself, never to the resolver of this machine.
		rm -f /etc/resolv.conf
		echo "nameserver 127.0.0.1" >/etc/resolv.conf
		ssh-keygen -q -A >/dev/null
	'
	[[ $installed == no ]] || fresh_package "$h"
	local p
	for p in "${hosts[@]}"; do
		printf '%s\t%s\n' "${addr[$p]}" "$p"
	done | on "$h" bash -c 'cat >>/etc/hosts'
	# A minimal sshd_config: Debian's defaults, on this host's address.
	on "$h" bash -c "cat >/etc/ssh/sshd_config" <<EOF
Include /etc/ssh/sshd_config.d/*.conf
ListenAddress ${addr[$h]}
KbdInteractiveAuthentication no
UsePAM yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# fresh_package HOST: the host as the package left it just after its
# installation: its configuration files back as dpkg installed them on this
# machine, its account's home, log, spool and /etc/banpush made anew by its
# own preinst and postinst, and no banpush of a source install in the way.
fresh_package() {
	local h=$1 f
	while read -r f _; do
		[[ $f == /* ]] || continue
		# shellcheck disable=SC2094 # read here, written in the host's overlay
		on "$h" install -D -m 0644 /dev/stdin "$f" <"$f"
	done < <(dpkg-query -W -f='${Conffiles}\n' banpush)
	on "$h" rm -f /usr/local/bin/banpush
	quiet on "$h" sh "$pkg_preinst" install
	quiet on "$h" sh "$pkg_postinst" configure
}

# start_sshd HOST: sshd in the foreground, its log written to
# /var/log/auth.log with syslog's time stamps (there is no syslog daemon in
# the host), where fail2ban's Debian sshd jail looks for it.
start_sshd() {
	local h=$1
	# shellcheck disable=SC2016 # expanded by the inner bash
	on "$h" setsid bash -c '
		exec 2> >(while IFS= read -r line; do
			printf "%(%b %e %H:%M:%S)T %s sshd[%d]: %s\n" -1 "$1" $$ "$line"
		done >>/var/log/auth.log)
		exec /usr/sbin/sshd -D -e
	' sshd "$h" </dev/null >/dev/null 2>&1 &
}

# setup HOST: banpush on one host, the way docs/setup.md tells an administrator.
# With --installed, the package has put the binary, the account, the sshd
# settings, the filter, the jail and the action in place.
setup_host() {
	local h=$1 p
	if [[ $installed == no ]]; then
		on "$h" install -m 0755 "$dir/banpush" /usr/local/bin/banpush
		# Receiving side: the account, its sshd settings, the filter and jail.
		quiet on "$h" sh "$repo/contrib/sshd/setup-receiver.sh"
		on "$h" install -m 0644 "$repo/contrib/sshd/banpush.conf" /etc/ssh/sshd_config.d/banpush.conf
		on "$h" install -m 0644 "$repo/contrib/fail2ban/filter.d/banpush.conf" /etc/fail2ban/filter.d/banpush.conf
		on "$h" install -m 0644 "$repo/contrib/fail2ban/jail.d/banpush.conf" /etc/fail2ban/jail.d/banpush.conf
	fi
	local peers=()
	for p in "${hosts[@]}"; do peers+=("${addr[$p]}"); done
	# Never ban a peer, whatever a peer sends.
	on "$h" bash -c "printf '[banpush]\nignoreip = 127.0.0.1/8 ::1 %s\n' '${peers[*]}' >/etc/fail2ban/jail.d/banpush.local"

	# Pushing side: a key, the inventory, the action on the sshd jail.
	on "$h" install -d -m 0700 /etc/banpush
	on "$h" ssh-keygen -q -t ed25519 -N '' -C "banpush@$h" -f /etc/banpush/id_ed25519
	on "$h" bash -c 'umask 077 && cat >/etc/banpush/peers' <<'EOF'
# banpush peers: ssh_config syntax. Peers first, defaults last.

Host *
    User banpush
    IdentityFile /etc/banpush/id_ed25519
    UserKnownHostsFile /etc/banpush/known_hosts
EOF
	for p in "${hosts[@]}"; do
		[[ $p != "$h" ]] || continue
		quiet on "$h" banpush peers add "$p" --host "${addr[$p]}"
	done
	[[ $installed == yes ]] ||
		on "$h" install -m 0644 "$repo/contrib/fail2ban/action.d/banpush.conf" /etc/fail2ban/action.d/banpush.conf
	# The attacker has a private address, as everything here does: push
	# and receive need --allow-private. The sshd log has no syslog daemon
	# behind it, so the jail polls the file.
	on "$h" bash -c 'cat >/etc/fail2ban/jail.d/sshd.local' <<'EOF'
[sshd]
backend = polling
action = %(action_)s
         banpush[pushargs="--allow-private"]
EOF
	[[ $detect == no ]] || setup_detect "$h"
}

# detect_sshd HOST FILE (--detect): the host's sshd jail bans on its own at
# 5 failures in 10 minutes, as Debian's does; FILE is the jail's .local.
detect_sshd() {
	on "$1" bash -c "printf 'maxretry = 5\nfindtime = 10m\n' >>$2"
}

# setup_detect HOST (--detect, the plain way): the host's sshd jail as
# detect_sshd makes it, and the banpush-fleet jail, which bans on the
# fleet's word and never bans a peer either. (With --fleet, setup-host.sh
# --detect-policy does the second.)
setup_detect() {
	local h=$1 p peers=()
	detect_sshd "$h" /etc/fail2ban/jail.d/sshd.local
	if [[ $installed == no ]]; then
		on "$h" install -m 0644 "$repo/contrib/fail2ban/filter.d/banpush-fleet.conf" /etc/fail2ban/filter.d/banpush-fleet.conf
		on "$h" install -m 0644 "$repo/contrib/fail2ban/jail.d/banpush-fleet.conf" /etc/fail2ban/jail.d/banpush-fleet.conf
	fi
	for p in "${hosts[@]}"; do peers+=("${addr[$p]}"); done
	on "$h" bash -c "printf '[banpush-fleet]\nenabled = true\nignoreip = 127.0.0.1/8 ::1 %s\n' '${peers[*]}' >/etc/fail2ban/jail.d/banpush-fleet.local"
}

# report_failures HOST (--detect): the root service of a real host, as
# start_sshd runs sshd: every failure the host's sshd jail finds goes to
# every peer and to the host's own receiver, with the policy of the
# authorized_keys lines.
report_failures() {
	local h=$1
	on "$h" setsid banpush report-failures --allow-private "${fleet_args[@]}" \
		</dev/null >>"$dir/$h/report-failures.log" 2>&1 &
	echo $! >"$dir/$h/report-failures.pid"
}

# trust FROM TO: FROM learns TO's host key, and TO lets FROM's key push.
trust() {
	local from=$1 to=$2
	# The demo made these host keys itself; a person compares the
	# fingerprint that 'peers trust' shows before answering yes.
	quiet on "$from" banpush peers trust "$to" --yes
	# The public key travels as an administrator would copy it.
	on "$from" cat /etc/banpush/id_ed25519.pub >"$dir/$from.pub"
	quiet on "$to" banpush authorize --peer "$from" --log /var/log/banpush/received.log \
		--from "${addr[$from]}" --allow-private --allow-unban ${fleet_args[@]+"${fleet_args[@]}"} \
		--install /var/lib/banpush/.ssh/authorized_keys "$dir/$from.pub"
}

# The fleet (--fleet): what the CA machine of docs/fleet.md holds, in $dir/ca.
# The demo is that machine; the hosts get copies of $dir/ca/fleet as an
# administrator would copy them with scp. fleet_from (set_hosts) is the
# smallest block that holds the hosts and not the attacker.
fleet_from=
fleet_opts=()

# fleet_constant: the CAs, the inventory, the known_hosts line and the KRL,
# made once for the whole fleet.
fleet_constant() {
	local ca=$dir/ca h
	mkdir -p "$ca/fleet"
	# A real CA key has a passphrase (or lives in an agent); the demo's
	# lives for a minute.
	ssh-keygen -q -t ed25519 -N '' -C banpush-user-ca -f "$ca/user_ca"
	ssh-keygen -q -t ed25519 -N '' -C banpush-host-ca -f "$ca/host_ca"
	cp -r "$repo/contrib" "$ca/user_ca.pub" "$ca/host_ca.pub" "$ca/fleet/"
	printf '@cert-authority * %s\n' "$(cat "$ca/host_ca.pub")" >"$ca/fleet/known_hosts"
	ssh-keygen -q -k -f "$ca/fleet/banpush_revoked.krl"
	{
		say "# banpush peers: the same file on every host; each host skips itself."
		for h in "${hosts[@]}"; do
			printf '\nHost %s\n    HostName %s\n' "$h" "${addr[$h]}"
		done
		printf '\nHost *\n    User banpush\n    IdentityFile /etc/banpush/id_ed25519\n    UserKnownHostsFile /etc/banpush/known_hosts\n'
	} >"$ca/fleet/peers"
}

# fleet_setup HOST: the host's first run of setup-host.sh, from its copy
# of the fleet directory (scp -r fleet root@HOST:).
fleet_setup() {
	local h=$1
	[[ $installed == yes ]] || on "$h" install -m 0755 "$dir/banpush" /usr/local/bin/banpush
	cp -r "$dir/ca/fleet" "$dir/$h/fleet"
	# The sshd log has no syslog daemon behind it: the jail polls the file,
	# which must exist for fail2ban-client -t.
	on "$h" bash -c 'printf "[sshd]\nbackend = polling\n" >/etc/fail2ban/jail.d/sshd-demo.local && touch /var/log/auth.log'
	local opts=("${fleet_opts[@]}")
	if [[ $detect == yes ]]; then
		detect_sshd "$h" /etc/fail2ban/jail.d/sshd-demo.local
		opts+=(--detect-policy "$fleet_failures $fleet_hosts $fleet_window")
	fi
	quiet on "$h" sh "$dir/$h/fleet/contrib/fleet/setup-host.sh" "${opts[@]}"
}

# fleet_sign HOST: the CA machine fetches the host's two public keys, signs
# them, and the host installs the certificates (setup-host.sh --certs, with
# no other option: the host keeps those of its first run).
fleet_sign() {
	local h=$1 ca=$dir/ca
	cp -r "$dir/$h/fleet/keys" "$ca/$h" # scp -r root@HOST:fleet/keys HOST
	ssh-keygen -q -s "$ca/user_ca" -I "$h" -n banpush -V +52w "$ca/$h/id_ed25519.pub"
	ssh-keygen -q -s "$ca/host_ca" -h -I "$h" -n "$h,${addr[$h]}" -V +52w "$ca/$h/ssh_host_ed25519_key.pub"
	cat "$ca/$h/id_ed25519-cert.pub" "$ca/$h/ssh_host_ed25519_key-cert.pub" |
		quiet on "$h" sh "$dir/$h/fleet/contrib/fleet/setup-host.sh" --certs
}

# wait_hostcert HOST: until the host's sshd, reloaded by setup-host.sh,
# shows its host certificate. (ssh-keyscan only looks: nothing trusts what
# it prints.)
wait_hostcert() {
	local h=$1 i out
	for ((i = 0; i < 100; i++)); do
		out=$(on "$h" ssh-keyscan -c -t ed25519 "${addr[$h]}" 2>/dev/null) || true
		[[ $out != *ssh-ed25519-cert-v01@openssh.com* ]] || return 0
		sleep 0.1
	done
	die "sshd on $h does not show its host certificate"
}

# same_on_all WHAT FILE: is FILE byte for byte the same on every host?
same_on_all() {
	local h sums=()
	for h in "${hosts[@]}"; do
		sums+=("$(on "$h" sha256sum "$2" | awk '{ print $1 }')")
	done
	for h in "${sums[@]}"; do
		[[ $h == "${sums[0]}" ]] || die "$1 differs between the hosts"
	done
	say "  $1 ($2): the same on $(and_list "${hosts[@]}") (sha256 ${sums[0]:0:16}...)"
}

wait_sshd() {
	local h=$1 i
	for ((i = 0; i < 100; i++)); do
		# bash's /dev/tcp: a connect to the host's own port 22, in its namespace.
		on "$h" timeout 1 bash -c "exec 3<>/dev/tcp/${addr[$h]}/22" 2>/dev/null && return 0
		sleep 0.1
	done
	die "sshd on $h did not start"
}

# banned_by HOST JAIL: does the jail list the attacker? (Output is read
# whole: with pipefail, grep -q closing the pipe early would fail the test.)
banned_by() {
	local out
	out=$(on "$1" fail2ban-client status "$2" 2>/dev/null) || return 1
	grep -qw -- "$attacker" <<<"$out"
}
# banned_in_any HOST: does any jail of the host's fail2ban list the attacker?
banned_in_any() {
	local j
	for j in $(on "$1" fail2ban-client status 2>/dev/null | sed -n 's/.*Jail list:[[:space:]]*//p' | tr ',' ' '); do
		! banned_by "$1" "$j" || return 0
	done
	return 1
}
# in_firewall HOST: has the host's iptables a rule for the attacker?
in_firewall() {
	local out
	out=$(on "$1" iptables -w -S 2>/dev/null) || return 1
	grep -qF -- "-s $attacker/32" <<<"$out"
}

# The options of run and up (parse_opts).
bin=          # --bin: the banpush to install on the hosts
prefix=bpdemo # --prefix: of the namespaces' names
fleet=no      # --fleet: the certificate way
nhosts=3      # --hosts
detect=no     # --detect: fleet failure detection
# The fleet policy of --detect (--fleet-failures, --fleet-hosts and
# --fleet-window), as 'banpush authorize' and 'banpush report-failures'
# take it.
fleet_failures=12
fleet_hosts=3
fleet_window=1h
fleet_args=()

up_usage="[--hosts N] [--fleet] [--installed] [--detect [--fleet-failures T] [--fleet-hosts K] [--fleet-window W]] [--bin FILE] [--prefix NAME]"

# parse_opts ARGS...: the options of run and up, into the globals above.
parse_opts() {
	while (($#)); do
		case $1 in
		--fleet) fleet=yes && shift ;;
		--installed) installed=yes && shift ;;
		--bin) bin=${2:?--bin FILE} && shift 2 ;;
		--prefix) prefix=${2:?--prefix NAME} && shift 2 ;;
		--hosts) nhosts=${2:?--hosts N} && shift 2 ;;
		--detect) detect=yes && shift ;;
		--fleet-failures) fleet_failures=${2:?--fleet-failures T} && fleet_args+=("$1") && shift 2 ;;
		--fleet-hosts) fleet_hosts=${2:?--fleet-hosts K} && fleet_args+=("$1") && shift 2 ;;
		--fleet-window) fleet_window=${2:?--fleet-window W} && fleet_args+=("$1") && shift 2 ;;
		*) die "unknown option $1 (want $up_usage)" ;;
		esac
	done
	if [[ $detect == no ]]; then
		((${#fleet_args[@]} == 0)) || die "${fleet_args[0]}: only with --detect"
	else
		[[ $fleet_failures =~ ^[1-9][0-9]{0,3}$ ]] || die "--fleet-failures: a number of failures"
		if ! [[ $fleet_hosts =~ ^[1-9][0-9]?$ ]] || ((fleet_hosts < 2)); then
			die "--fleet-hosts: a number of hosts, at least 2"
		fi
		[[ $fleet_window =~ ^[1-9][0-9]*[smh]$ ]] || die "--fleet-window: a duration such as 90s, 10m or 1h"
		fleet_args=(--fleet-failures "$fleet_failures" --fleet-hosts "$fleet_hosts" --fleet-window "$fleet_window")
	fi
	if ! [[ $nhosts =~ ^[0-9]{1,2}$ ]] || ((nhosts < 2 || nhosts > max_hosts)); then
		die "--hosts: a number of hosts from 2 to $max_hosts"
	fi
	set_hosts "$nhosts"
}

cmd_up() {
	need_root
	dir=${1:?usage: demo.sh up DIR $up_usage}
	shift
	parse_opts "$@"
	up
}

# up: set up the hosts in $dir, as the options say.
up() {
	[[ $prefix =~ ^[a-z0-9]{1,10}$ ]] || die "--prefix: 1 to 10 of a-z 0-9"
	if [[ $installed == yes ]]; then
		[[ -z $bin ]] || die "--installed runs $pkg_bin: not with --bin"
		[[ $(dpkg-query -W -f='${Status}' banpush 2>/dev/null) == "install ok installed" && -x $pkg_bin && -f $pkg_preinst ]] ||
			die "--installed: the banpush package is not installed here (bash contrib/packaging/build.sh, then apt install ./dist/banpush_*.deb)"
	fi
	# down removes DIR: it must be the demo's own.
	[[ ! -e $dir ]] || [[ -d $dir && -z $(ls -A "$dir") ]] || die "$dir: want a new or empty directory"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	case $dir/ in
	/etc/* | /var/* | /usr/local/* | /root/* | /run/*)
		die "$dir: the hosts see private copies of /etc, /var, /usr/local, /root and /run; use a directory elsewhere (e.g. /tmp)"
		;;
	esac
	local n
	for n in "${hosts[@]}" atk net; do
		! ns_exists "$prefix-$n" ||
			die "namespace $prefix-$n exists: another demo is running, or one was killed (ip netns del $prefix-$n)"
	done
	# down reads how many hosts there are before it trusts the prefix.
	echo "$nhosts" >"$dir/hosts"
	echo "$prefix" >"$dir/prefix"
	if [[ $installed == yes ]]; then
		:
	elif [[ -n $bin ]]; then
		install -m 0755 "$bin" "$dir/banpush"
	elif [[ ! -x $dir/banpush ]]; then
		build "$dir/banpush"
	fi

	ip netns add "$(ns net)"
	ip -n "$(ns net)" link add br0 type bridge
	ip -n "$(ns net)" link set br0 up
	for n in "${hosts[@]}" atk; do make_host "$n"; done
	local a b
	if [[ $fleet == yes ]]; then
		fleet_constant
		for n in "${hosts[@]}"; do
			fresh_host "$n"
			fleet_setup "$n"
			start_sshd "$n"
		done
		for a in "${hosts[@]}"; do wait_sshd "$a"; done
		for a in "${hosts[@]}"; do fleet_sign "$a"; done
		for a in "${hosts[@]}"; do wait_hostcert "$a"; done
	else
		for n in "${hosts[@]}"; do
			fresh_host "$n"
			setup_host "$n"
			start_sshd "$n"
		done
		for a in "${hosts[@]}"; do wait_sshd "$a"; done
		for a in "${hosts[@]}"; do
			for b in "${hosts[@]}"; do
				[[ $a == "$b" ]] || trust "$a" "$b"
			done
		done
	fi
	for a in "${hosts[@]}"; do
		quiet on "$a" banpush peers check
		quiet on "$a" fail2ban-client -x start
	done
	for a in "${hosts[@]}"; do
		local i
		for ((i = 0; i < 200; i++)); do
			on "$a" fail2ban-client ping >/dev/null 2>&1 && break
			sleep 0.1
		done
		on "$a" fail2ban-client status banpush >/dev/null
		apply_unbans "$a"
	done
	[[ $detect == yes ]] || return 0
	for a in "${hosts[@]}"; do
		on "$a" fail2ban-client status banpush-fleet >/dev/null
		report_failures "$a"
	done
	# Each reporter follows fail2ban's log once its cursor is saved: a
	# failure before that would not be reported. One that cannot start
	# (a bad flag) stops at once: say so now, not when the fleet fails to
	# ban.
	local i
	for a in "${hosts[@]}"; do
		for ((i = 0; i < 300; i++)); do
			kill -0 "$(cat "$dir/$a/report-failures.pid")" 2>/dev/null ||
				die "banpush report-failures on $a stopped: $(tail -n 5 "$dir/$a/report-failures.log")"
			! on "$a" test -s /var/lib/banpush-report-failures/cursor || break
			sleep 0.1
		done
		((i < 300)) || die "banpush report-failures on $a did not start following fail2ban's log in 30 s: $(tail -n 5 "$dir/$a/report-failures.log")"
	done
}

# apply_unbans HOST: what the systemd units banpush-apply-unbans.path and
# .timer do on a real host (the hosts here have no systemd): apply the
# unbans peers send, as root, as soon as they are in the received log.
apply_unbans() {
	local h=$1
	on "$h" setsid banpush apply-unbans --follow --interval 200ms --allow-private \
		</dev/null >>"$dir/$h/apply-unbans.log" 2>&1 &
}

# fail_login HOST USER [FROM]: one failed SSH login from the attacker's
# namespace (from its address FROM): an unknown user, no key, no password,
# so that sshd logs "Invalid user USER from ...", one failure to fail2ban's
# sshd filter. timeout: a ban in the middle of a handshake leaves ssh
# waiting.
fail_login() {
	local bind=()
	[[ -z ${3:-} ]] || bind=(-b "$3")
	ip netns exec "$(ns atk)" timeout 5 ssh -F /dev/null -n -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o PubkeyAuthentication=no -o ConnectTimeout=2 ${bind[@]+"${bind[@]}"} \
		"$2@${addr[$1]}" true >/dev/null 2>&1 || true
}

# cmd_attack DIR: failed SSH logins from the attacker to host 1 until host
# 1's sshd jail bans it (at most 30 tries, a few a second, as a script
# kiddie would).
cmd_attack() {
	use_dir "${1:?usage: demo.sh attack DIR}"
	local i
	for ((i = 1; i <= 30; i++)); do
		fail_login h1 "admin$i"
		say "  attempt $i: ssh admin$i@${addr[h1]}: login failed"
		banned_by h1 sshd && return 0
	done
	die "host 1 did not ban $attacker after 30 failed logins"
}

spread_usage="demo.sh spread DIR [--tries N] [--hosts h1,h2,...] [--from ADDR] [--gap SECONDS]"

# cmd_spread DIR [--tries N] [--hosts h1,h2,...] [--from ADDR] [--gap SECONDS]:
# N failed logins (3 by default) on each listed host in turn (every host by
# default), from the attacker or from another address of its namespace,
# SECONDS apart (0 by default), each printed with its time (seconds since
# the epoch): a brute force spread thin over a fleet.
cmd_spread() {
	use_dir "${1:?usage: $spread_usage}"
	shift
	local tries=3 list from=$attacker gap=0 h
	list=$(IFS=, && say "${hosts[*]}")
	while (($#)); do
		case $1 in
		--tries) tries=${2:?--tries N} && shift 2 ;;
		--hosts) list=${2:?--hosts h1,h2,...} && shift 2 ;;
		--from) from=${2:?--from ADDR} && shift 2 ;;
		--gap) gap=${2:?--gap SECONDS} && shift 2 ;;
		*) die "unknown option $1 (usage: $spread_usage)" ;;
		esac
	done
	[[ $tries =~ ^[1-9][0-9]{0,2}$ ]] || die "--tries: a number of failed logins a host"
	[[ $gap =~ ^[0-9]{1,4}(\.[0-9]{1,3})?$ ]] || die "--gap: seconds between two failures"
	local targets=()
	IFS=, read -ra targets <<<"$list"
	((${#targets[@]})) || die "--hosts: no host"
	for h in "${targets[@]}"; do
		[[ $h =~ ^h[0-9]{1,2}$ && -s $dir/$h/pid ]] || die "--hosts: no host $h in $dir"
	done
	use_from "$from"
	fail_each "$tries" "$from" "$gap" "${targets[@]}"
}

# fail_each TRIES FROM GAP HOST...: TRIES failed logins on each host in
# turn, from FROM, GAP seconds apart, each printed with its time.
failures=0 # how many fail_each made, to number them
fail_each() {
	local tries=$1 from=$2 gap=$3 h i
	shift 3
	for h in "$@"; do
		for ((i = 1; i <= tries; i++)); do
			((failures == 0)) || sleep "$gap"
			failures=$((failures + 1))
			fail_login "$h" "admin$failures" "$from"
			say "  failure $failures: $h, try $i of $tries: ssh admin$failures@${addr[$h]} from $from, at $(now)"
		done
	done
}

# use_from ADDR: the attacker's namespace has ADDR, one of 10.77.0.32 to
# 10.77.0.254 (below are the hosts' and the fleet's), as its own.
use_from() {
	local a=$1
	if ! [[ $a =~ ^10\.77\.0\.([0-9]{1,3})$ ]] || ((BASH_REMATCH[1] < 32 || BASH_REMATCH[1] > 254)); then
		die "--from: an address from 10.77.0.32 to 10.77.0.254, not $a"
	fi
	[[ $a != "$attacker" ]] || return 0
	ip -n "$(ns atk)" -o addr show dev eth0 | grep -qF " $a/" ||
		ip -n "$(ns atk)" addr add "$a/24" dev eth0
}

cmd_down() {
	use_dir "${1:?usage: demo.sh down DIR}"
	[[ -d $dir ]] || return 0
	# Only a directory that 'up' made is removed.
	if [[ ! -s $dir/prefix ]]; then
		rmdir "$dir" 2>/dev/null || die "$dir: not a demo directory (no $dir/prefix)"
		return 0
	fi
	# Every process in the namespaces is one the demo started: its
	# anchors, sshd, fail2ban, and the senders fail2ban started.
	local n pids i
	for n in "${hosts[@]}" atk net; do
		ns_exists "$(ns "$n")" || continue
		mapfile -t pids < <(ip netns pids "$(ns "$n")")
		((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
	done
	for n in "${hosts[@]}" atk net; do
		ns_exists "$(ns "$n")" || continue
		for ((i = 0; i < 30; i++)); do
			mapfile -t pids < <(ip netns pids "$(ns "$n")")
			((${#pids[@]})) || break
			sleep 0.1
		done
		((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
		ip netns del "$(ns "$n")"
	done
	# The hosts' received logs are append-only (banpush setup-account):
	# nobody may remove them until the attribute is lifted.
	chattr -R -a "$dir" 2>/dev/null || true
	rm -rf "$dir"
}

cmd_on() {
	use_dir "${1:?usage: demo.sh on DIR HOST COMMAND...}"
	local h=${2:?usage: demo.sh on DIR HOST COMMAND...}
	shift 2
	[[ -s $dir/$h/pid ]] || die "no host $h in $dir"
	on "$h" "$@"
}

# wait_rules present|absent HOST...: until each host's iptables has (or no
# longer has) a rule for the attacker, at most 20 s; seen[HOST] is when it
# was seen. The rules change within a second or two, and fail2ban-client
# is slow on a busy machine: the hosts are watched first, told after.
declare -A seen=()
wait_rules() {
	local want=$1 pending left h deadline
	shift
	pending=("$@")
	deadline=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t + 20 }')
	while ((${#pending[@]})); do
		left=()
		for h in "${pending[@]}"; do
			local has=absent
			! in_firewall "$h" || has=present
			if [[ $has == "$want" ]]; then
				seen[$h]=$(now)
			else
				left+=("$h")
			fi
		done
		pending=(${left[@]+"${left[@]}"})
		((${#pending[@]})) || break
		if ! awk -v d="$deadline" -v n="$(now)" 'BEGIN { exit !(n < d) }'; then
			[[ $want == absent ]] || die "no rule for $attacker on ${pending[*]} after 20 s"
			die "$attacker still in the firewall of ${pending[*]} 20 s after the unban"
		fi
		sleep 0.1
	done
}

cmd_run() {
	need_root
	local start
	start=$(now)
	parse_opts "$@"
	base=$(mktemp -d /tmp/banpush-demo.XXXXXX) # global: the EXIT trap needs it
	dir=$base/hosts
	trap '[[ -z $policy_rc ]] || rm -f "$policy_rc"; cmd_down "$dir" && rm -rf "$base" && say "Removed the namespaces, their daemons and $base."' EXIT
	trap 'say "interrupted"; exit 130' INT TERM

	local others=("${hosts[@]:1}")
	if [[ $detect == yes ]]; then
		detect_plan
		say "banpush demo: a brute force spread over ${#hosts[@]} hosts, too thin for any host's own fail2ban,"
		say "becomes a firewall rule on every host at once."
	else
		say "banpush demo: a brute force on host 1 becomes a firewall rule on $(and_list "${others[@]}")."
	fi
	install_missing
	if [[ $installed == yes ]]; then
		step "Using the installed package"
		say "$(dpkg-query -W -f='${Package} ${Version}' banpush 2>/dev/null || echo "banpush: not installed"): $pkg_bin and the package's files"
	elif [[ -z $bin ]]; then
		step "Building banpush"
		build "$base/banpush"
		bin=$base/banpush
		say "built into $base (nothing is installed on this machine)"
	fi

	local h named=() others_n="all the others"
	for h in "${hosts[@]}"; do named+=("$h ${addr[$h]}"); done
	((${#hosts[@]} != 3)) || others_n="the two others"
	((${#hosts[@]} != 2)) || others_n="the other"
	step "Creating hosts $(IFS=, && say "${named[*]}" | sed 's/,/, /g') and an attacker ${attacker}"
	say "each host: its own network namespace, sshd, fail2ban, iptables and banpush;"
	if [[ $fleet == yes ]]; then
		say "banpush set up the certificate way (docs/fleet.md): a user CA and a"
		say "host CA, each host's keys signed, and contrib/fleet/setup-host.sh run twice"
		say "on each host (before and after signing); every host pushes to $others_n"
	elif [[ $installed == yes ]]; then
		say "banpush from the installed package (its account, sshd settings, fail2ban"
		say "filter, receiving jail and action), set up as docs/setup.md says: keys, the"
		say "inventory, ignoreip, the push action on the sshd jail; every host pushes"
		say "to $others_n"
	else
		say "banpush set up as on a real server (contrib/: receiver account, sshd settings,"
		say "fail2ban filter, receiving jail, push action on the sshd jail; every host"
		say "pushes to $others_n)"
	fi
	if [[ $detect == yes ]]; then
		say "and fleet failure detection: each host's sshd jail bans at 5 failures in 10"
		say "minutes; 'banpush report-failures' sends each failure it finds to every"
		say "other host and to its own receiver; every receiver counts them, and at"
		say "$fleet_failures failures from at least $fleet_hosts hosts within $fleet_window (each host counting"
		say "for at most $(((fleet_failures + fleet_hosts - 1) / fleet_hosts))), writes a fleet line that its banpush-fleet jail bans on"
	fi
	up
	say "ready after $(since "$start") s; h1 checks its peers:"
	on h1 banpush peers check 2>&1 | sed 's/^/    /'
	if [[ $fleet == yes ]]; then
		step "The same files on every host"
		same_on_all "the banpush block of authorized_keys" /var/lib/banpush/.ssh/authorized_keys
		same_on_all "the inventory" /etc/banpush/peers
		same_on_all "known_hosts" /etc/banpush/known_hosts
		say "  the one authorized_keys line:"
		on h1 grep -F cert-authority /var/lib/banpush/.ssh/authorized_keys | fold -w 76 | sed 's/^/    /'
		say "  the one known_hosts line:"
		on h1 cat /etc/banpush/known_hosts | fold -w 76 | sed 's/^/    /'
		say "  h1's inventory lists h1 too; h1 skips itself:"
		on h1 banpush peers list 2>&1 | sed 's/^/    /'
	fi
	if [[ $detect == yes ]]; then
		spread_thin
	else
		brute_force
	fi
	say "The whole demo took $(since "$start") s. Tearing down."
}

# The failures of run --detect, by host (detect_plan): the threshold
# spread as evenly as the hosts allow.
declare -A plan=()

# detect_plan: --fleet-failures failures over the hosts, as evenly as can
# be, each host under its sshd jail's maxretry (5) and within what one
# host may count for; or why the demo cannot show it.
detect_plan() {
	local n=${#hosts[@]} i h cap=$(((fleet_failures + fleet_hosts - 1) / fleet_hosts))
	((n >= fleet_hosts)) ||
		die "--detect: $fleet_hosts hosts must see failures (--fleet-hosts): run it with --hosts $fleet_hosts or more"
	for ((i = 0; i < n; i++)); do
		h=${hosts[i]}
		plan[$h]=$((fleet_failures / n + (i < fleet_failures % n ? 1 : 0)))
	done
	((plan[h1] <= 4)) ||
		die "--detect: $fleet_failures failures over $n hosts is ${plan[h1]} on a host, which its own sshd jail (maxretry 5) would ban: give more --hosts"
	((plan[h1] <= cap)) || die "--detect: ${plan[h1]} failures on a host is more than one host counts for ($cap)"
	return 0
}

# sshd_failed HOST: how many failures of the attacker the host's sshd jail
# found (its fail2ban log's Found lines).
sshd_failed() {
	on "$1" grep -cF -- "[sshd] Found $attacker " /var/log/fail2ban.log || true
}

# fleet_count HOST prints "FAILURES HOSTS": the attacker's failures that
# the host's receiver counts, and the hosts they come from (its memory,
# received.log.fleet, a line "HOST ADDRESS T1,T2,...").
fleet_count() {
	# shellcheck disable=SC2016 # awk's fields
	on "$1" awk -v a="$attacker" '$2 == a { n += split($3, t, ","); h++ } END { print n + 0, h + 0 }' \
		/var/log/banpush/received.log.fleet 2>/dev/null || say "0 0"
}

# spread_thin: the story of run --detect: failed logins spread over the
# hosts, too few on each for its own sshd jail; the fleet's count bans on
# every host at once.
spread_thin() {
	local h last=${hosts[0]} i
	for h in "${hosts[@]}"; do ((plan[$h] == 0)) || last=$h; done
	step "Spreading $fleet_failures failed logins over the hosts from $attacker"
	say "(no host sees more than ${plan[h1]}: its sshd jail would ban at 5)"
	local t0
	t0=$(now)
	for h in "${hosts[@]}"; do
		local k=${plan[$h]}
		[[ $h != "$last" ]] || k=$((k - 1))
		((k == 0)) || fail_each "$k" "$attacker" 0 "$h"
	done

	step "$((fleet_failures - 1)) failures: no host has banned $attacker alone"
	# Each failure is in its host's sshd jail within a second or two
	# (the jail polls the log), and in every host's count soon after.
	local deadline count
	deadline=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t + 30 }')
	for h in "${hosts[@]}"; do
		until [[ $(fleet_count "$h") == "$((fleet_failures - 1)) "* ]]; do
			awk -v d="$deadline" -v n="$(now)" 'BEGIN { exit !(n < d) }' ||
				die "$h: counts $(fleet_count "$h") (failures, hosts) after 30 s, not $((fleet_failures - 1)) failures"
			sleep 0.2
		done
	done
	for h in "${hosts[@]}"; do
		! in_firewall "$h" || die "$h banned $attacker before the threshold"
		read -ra count <<<"$(fleet_count "$h")"
		say "  $h: $(sshd_failed "$h") failures in its sshd jail (maxretry 5); counts ${count[0]} from ${count[1]} hosts; not banned"
	done

	step "Failure $fleet_failures, on $last"
	local tlast
	fail_each 1 "$attacker" 0 "$last"
	tlast=$(now)
	wait_rules present "${hosts[@]}"
	for h in "${hosts[@]}"; do
		say "  $h: banned by its banpush-fleet jail $(diff_s "$tlast" "$(ban_time "$h" banpush-fleet)") s after failure $fleet_failures" \
			"(rule seen at +$(diff_s "$tlast" "${seen[$h]}") s)"
	done

	step "What h1 received (the fleet line in its /var/log/banpush/received.log)"
	on h1 grep -F -- " fleet $attacker " /var/log/banpush/received.log | sed 's/^/    /'

	step "Verdict"
	for h in "${hosts[@]}"; do
		! banned_by "$h" sshd || die "$h's own sshd jail banned $attacker: the failures were not spread thin enough"
	done
	say "OK: $fleet_failures failures over ${#hosts[@]} hosts, $(diff_s "$t0" "$tlast") s from the first to the last;"
	say "no host's own sshd jail banned $attacker, and every host banned it together."
}

# brute_force: the demo's story: a brute force on h1, the ban on every
# other host, and one unban on h1 that lifts it everywhere.
brute_force() {
	local others=("${hosts[@]:1}") h
	step "Brute-forcing SSH on h1 from $attacker"
	local t0 tban
	t0=$(now)
	cmd_attack "$dir"
	wait_rules present "${others[@]}"

	tban=$(ban_time h1 sshd)
	say "h1: fail2ban banned $attacker $(diff_s "$t0" "$tban") s after the first attempt:"
	on h1 fail2ban-client status sshd | sed 's/^/    /'

	step "$(and_list "${others[@]}") received the ban and banned it in their iptables"
	for h in "${others[@]}"; do
		say "  $h: banned by its banpush jail $(diff_s "$tban" "$(ban_time "$h" banpush)") s after h1's ban" \
			"(rule seen at +$(diff_s "$tban" "${seen[$h]}") s):"
		on "$h" iptables -w -S | grep -F -- "$attacker" | sed 's/^/      /'
	done

	step "What h2 received (its /var/log/banpush/received.log)"
	on h2 cat /var/log/banpush/received.log | sed 's/^/    /'

	step "banpush flush and status on h1"
	say "(the sender lingers a few seconds for more bans; flush, which a systemd"
	say "timer runs every minute, ends that and delivers anything still queued)"
	on h1 banpush flush | sed 's/^/    /'
	on h1 banpush status | sed 's/^/    /'

	local verdict=ok
	if on h1 grep -qF -- "$attacker" /var/log/banpush/received.log; then
		verdict=bad
		say "h1 received its own ban back: a loop"
	fi

	step "A mistake: $attacker was a colleague. banpush unban on h1 takes it back everywhere"
	local tunban
	tunban=$(now)
	on h1 banpush unban --allow-private "$attacker" 2>&1 | sed 's/^/    /'
	wait_rules absent "${hosts[@]}"
	for h in "${hosts[@]}"; do
		say "  $h: no rule for $attacker any more, +$(diff_s "$tunban" "${seen[$h]}") s after the unban"
	done
	say "  what h2 received (the unban line, which no filter bans on; apply-unbans lifted it):"
	on h2 grep -F " unban $attacker " /var/log/banpush/received.log | sed 's/^/    /'
	for h in "${hosts[@]}"; do
		if banned_in_any "$h"; then
			verdict=bad
			say "$h: fail2ban still lists $attacker"
		fi
	done
	step "Verdict"
	if [[ $verdict == ok ]]; then
		say "OK: banned on h1 by fail2ban, then in the firewalls of $(and_list "${others[@]}"); nothing came back to h1;"
		say "one 'banpush unban' on h1 lifted it on all ${#hosts[@]}."
	else
		die "the ban came back to h1, or an unban did not take"
	fi
}

main() {
	local cmd=${1:-run}
	[[ $# == 0 ]] || shift
	case $cmd in
	run) cmd_run "$@" ;;
	up)
		# A failed setup leaves nothing behind.
		trap '(($? == 0)) || [[ ! -s ${dir:-}/prefix ]] || cmd_down "$dir"' EXIT
		cmd_up "$@"
		trap - EXIT
		;;
	attack) cmd_attack "$@" ;;
	spread) cmd_spread "$@" ;;
	on) cmd_on "$@" ;;
	down) cmd_down "$@" ;;
	-h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
	--*) cmd_run "$cmd" "$@" ;;
	*) die "unknown subcommand $cmd (run, up, attack, spread, on, down)" ;;
	esac
}

main "$@"
