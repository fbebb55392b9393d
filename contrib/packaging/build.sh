#!/usr/bin/env bash
# Build banpush's Debian and RPM packages:
#
#   bash contrib/packaging/build.sh [--version V] [--arch "amd64 arm64"] [--out DIR]
#
# writes DIR/banpush_V_ARCH.deb and DIR/banpush-V-1.RPMARCH.rpm (dist/ of
# the checkout by default) for each architecture, with nfpm (pinned below,
# run with 'go run', so that it never enters go.mod). Needs Go and git;
# nothing is installed.
#
# The version is V, or else from git: v1.2.3 on a tagged commit gives
# 1.2.3, four commits later 1.2.3+4.gabcdef012345, and with no tag
# 0.0.0+gitYYYYMMDDHHMMSS.abcdef012345 (the commit's time, so that later
# commits sort higher). The binary is built with CGO_ENABLED=0 -trimpath
# and stamped with that version and the commit (-X main.version,
# main.commit).
#
# The binary's path: contrib/ names /usr/local/bin/banpush, where the
# source install (docs/install.md) puts it. The packages install /usr/bin/banpush
# (a package never writes to /usr/local), so the staged copies of the
# files that name the binary have exactly that string replaced; the build
# fails if one of them no longer holds it, or if any staged file still
# holds it afterwards. cmd/banpush's TestContribBinaryPath checks that every
# contrib file that names the binary names that one path.
set -euo pipefail

nfpm=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
src_bin=/usr/local/bin/banpush # as contrib/ names it: the source install
pkg_bin=/usr/bin/banpush       # as the packages install it

# The files that name the binary, as staged (relative to contrib/); a
# service of contrib/systemd runs it, so each must name it too.
rewrite=(fail2ban/action.d/banpush.conf sshd/authorized_keys.example logrotate.d/banpush)

die() {
	printf 'build.sh: error: %s\n' "$*" >&2
	exit 1
}

# copyright prints /usr/share/doc/banpush/copyright: banpush's licence, and
# that of every module compiled into the binary (a static binary carries
# their code, so it carries their notices).
copyright() {
	local path modversion dir lic
	printf 'banpush\nhttps://github.com/banpush/banpush\n\n'
	if [[ -f LICENSE ]]; then
		cat LICENSE
	else
		echo "The banpush source tree states no licence (it has no LICENSE file)."
	fi
	printf '\n/usr/bin/banpush is a static Go binary. It contains these modules,\nunder these licences.\n'
	while read -r path modversion dir; do
		lic=
		for lic in "$dir"/LICENSE* "$dir"/COPYING*; do
			[[ -f $lic ]] && break
		done
		[[ -f $lic ]] || die "$path $modversion: no licence file in $dir"
		printf '\n-- %s %s\n\n' "$path" "$modversion"
		if grep -q 'Apache License' "$lic" && grep -q 'Version 2.0' "$lic"; then
			# Debian keeps one copy of it, as Debian policy asks.
			echo "Apache License, Version 2.0: /usr/share/common-licenses/Apache-2.0 on Debian, https://www.apache.org/licenses/LICENSE-2.0"
		else
			cat "$lic"
		fi
	done < <(go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/banpush | sort -u)
	printf '\n-- the Go standard library and runtime, %s\n\n' "$(go env GOVERSION)"
	cat "$(go env GOROOT)/LICENSE"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=
arches="amd64 arm64"
out=$repo/dist
while (($#)); do
	case $1 in
	--version) version=${2:?--version needs a value} && shift 2 ;;
	--arch) arches=${2:?--arch needs a list} && shift 2 ;;
	--out) out=${2:?--out needs a directory} && shift 2 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || die "go not found: install Go (https://go.dev/doc/install)"
cd "$repo"

commit=unknown
if git rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git rev-parse HEAD)
	git diff --quiet HEAD -- 2>/dev/null || commit+=.dirty
fi
if [[ -z $version ]]; then
	[[ $commit != unknown ]] || die "not a git checkout: give --version"
	if tag=$(git describe --tags --match 'v[0-9]*' --abbrev=12 2>/dev/null); then
		version=${tag#v}
		# 1.2.3-4-gabcdef012345 -> 1.2.3+4.gabcdef012345
		if [[ $version =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
			version=${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}
		fi
	else
		version=0.0.0+git$(TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD).$(git rev-parse --short=12 HEAD)
	fi
fi
# Characters that mean the same to dpkg and rpm, starting with a digit.
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "version $version: want a digit, then letters, digits, '.', '+' or '~'"

maintainer=${BANPUSH_MAINTAINER:-banpush maintainers <maintainers@banpush.invalid>}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The files every architecture shares.
cp -r contrib/fail2ban contrib/logrotate.d contrib/systemd "$stage/"
mkdir -p "$stage/sshd" "$stage/doc" "$stage/scripts"
cp contrib/sshd/banpush.conf contrib/sshd/authorized_keys.example "$stage/sshd/"
cp contrib/packaging/scripts/*.sh "$stage/scripts/"
for f in "${rewrite[@]}" "$stage"/systemd/*.service; do
	f=${f#"$stage/"}
	grep -qF -- "$src_bin" "$stage/$f" || die "contrib/$f does not name $src_bin: update the rewrite list of $0"
	sed -i "s|$src_bin|$pkg_bin|g" "$stage/$f"
done
if left=$(grep -rlF -- "$src_bin" "$stage"); then
	die "still naming $src_bin after the rewrite: ${left//$stage\//contrib/} (add to the rewrite list of $0)"
fi
mv "$stage/sshd/authorized_keys.example" "$stage/doc/"
cp README.md "$stage/doc/"
mkdir -p "$stage/doc/docs"
cp docs/*.md "$stage/doc/docs/"
copyright >"$stage/doc/copyright"
cp contrib/packaging/lintian-overrides "$stage/"
cat >"$stage/changelog.yaml" <<CHANGELOG
- semver: "$version-1"
  date: "$(TZ=UTC date -d "@$(git show -s --format=%ct HEAD 2>/dev/null || date +%s)" +%Y-%m-%dT%H:%M:%SZ)"
  packager: "$maintainer"
  deb:
    urgency: medium
    distributions: [unstable]
  changes:
    - note: "Built from commit ${commit:0:12}${commit#${commit%.dirty}}."
CHANGELOG

# The manual page and the completions, from the command line's own model:
# a build for this machine prints them (the packages' binaries may be for
# another architecture), the same for every package.
mkdir -p "$stage/man" "$stage/completion"
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-X main.version=$version" -o "$stage/banpush-doc" ./cmd/banpush
SOURCE_DATE_EPOCH=$(git show -s --format=%ct HEAD 2>/dev/null || date +%s) \
	"$stage/banpush-doc" man | gzip -9n >"$stage/man/banpush.1.gz"
for shell in bash zsh fish; do
	"$stage/banpush-doc" completion "$shell" >"$stage/completion/$shell"
done
rm "$stage/banpush-doc"

for arch in $arches; do
	echo "== banpush $version for $arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
		-o "$stage/banpush" ./cmd/banpush
	for packager in deb rpm; do
		(cd "$stage" && BANPUSH_ARCH=$arch BANPUSH_VERSION=$version \
			BANPUSH_MAINTAINER=$maintainer \
			go run "$nfpm" package --config "$repo/contrib/packaging/nfpm.yaml" \
			--packager "$packager" --target "$out/")
	done
done
