#!/bin/sh
# check.sh DIST ARCH...: checks the packages build.sh made in DIST:
#   - lintian: no error and no warning (the overrides installed with the
#     package say why each overridden tag stays); informational tags are
#     printed;
#   - systemd-analyze verify: both units, against the package's own files
#     (so every ExecStart=/ExecCondition= path is checked), print nothing;
#   - dpkg-deb -c: each package holds exactly the documented files, with
#     their modes, the conffiles, the dependencies, and binaries for the
#     package's architecture.
# Exits non-zero at the first failed check, saying which.
set -eu

cd "$(dirname "$0")/.."
dist=${1:?usage: check.sh DIST ARCH...}
shift
[ $# -gt 0 ] || set -- amd64 arm64
VERSION=$(packaging/version.sh)

fail() {
	echo "package-check: FAIL: $*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed (apt-get install $2)"
}
need lintian lintian
need systemd-analyze systemd
need dpkg-deb dpkg

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The files of keystone, as "mode path" (dpkg-deb -c), folders left out.
expected_keystone() {
	cat <<EOF
-rw-r--r-- ./etc/keystone/agent.toml
-rw-r--r-- ./lib/systemd/system/keystone-agent.service
-rwxr-xr-x ./opt/keystone/releases/$VERSION/keystone-agent
-rwxr-xr-x ./opt/keystone/releases/$VERSION/keystone-shim
-rwxr-xr-x ./usr/bin/keystonectl
-rwxr-xr-x ./usr/lib/keystone/agent-provisioned
-rw-r--r-- ./usr/share/doc/keystone/changelog.gz
-rw-r--r-- ./usr/share/doc/keystone/copyright
-rw-r--r-- ./usr/share/doc/keystone/install.md
-rw-r--r-- ./usr/share/lintian/overrides/keystone
-rw-r--r-- ./usr/share/man/man1/keystonectl.1.gz
EOF
}
expected_fleet() {
	cat <<EOF
-rw-r--r-- ./etc/keystone-fleet/fleet.toml
-rw-r--r-- ./lib/systemd/system/keystone-fleet.service
-rwxr-xr-x ./usr/lib/keystone-fleet/fleet-configured
-rw-r--r-- ./usr/share/doc/keystone-fleet/changelog.gz
-rw-r--r-- ./usr/share/doc/keystone-fleet/copyright
EOF
}

# elf_machine FILE: the ELF e_machine of FILE, as decimal.
elf_machine() {
	od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '
}

for arch in "$@"; do
	agent_deb=$dist/keystone_${VERSION}_$arch.deb
	fleet_deb=$dist/keystone-fleet_${VERSION}_$arch.deb
	[ -f "$agent_deb" ] || fail "$agent_deb is missing (make package)"
	[ -f "$fleet_deb" ] || fail "$fleet_deb is missing (make package)"

	echo "== dpkg-deb -c $agent_deb"
	dpkg-deb -c "$agent_deb" | tee "$tmp/agent.list"
	echo "== dpkg-deb -c $fleet_deb"
	dpkg-deb -c "$fleet_deb" | tee "$tmp/fleet.list"
	for p in agent fleet; do
		awk '$1 !~ /^d/ {print $1, $6}' "$tmp/$p.list" | sort >"$tmp/$p.got"
		if [ $p = agent ]; then expected_keystone; else expected_fleet; fi | sort >"$tmp/$p.want"
		diff -u "$tmp/$p.want" "$tmp/$p.got" >"$tmp/$p.diff" ||
			fail "$p package ($arch): files differ from the documented layout:$(printf '\n')$(cat "$tmp/$p.diff")"
		if awk '{print $2}' "$tmp/$p.list" | grep -qv '^root/root$'; then
			fail "$p package ($arch): a file not owned by root/root"
		fi
	done

	[ "$(dpkg-deb -f "$agent_deb" Architecture)" = "$arch" ] || fail "keystone ($arch): Architecture field"
	[ "$(dpkg-deb -f "$agent_deb" Version)" = "$VERSION" ] || fail "keystone ($arch): Version field"
	dpkg-deb -f "$agent_deb" Depends | grep -q 'adduser' || fail "keystone ($arch): does not depend on adduser"
	dpkg-deb -f "$fleet_deb" Depends | grep -q "keystone (= $VERSION)" ||
		fail "keystone-fleet ($arch): does not depend on keystone (= $VERSION)"
	dpkg-deb --ctrl-tarfile "$agent_deb" | tar -xO ./conffiles >"$tmp/agent.conffiles"
	[ "$(cat "$tmp/agent.conffiles")" = /etc/keystone/agent.toml ] ||
		fail "keystone ($arch): conffiles are '$(cat "$tmp/agent.conffiles")', want /etc/keystone/agent.toml"
	dpkg-deb --ctrl-tarfile "$fleet_deb" | tar -xO ./conffiles >"$tmp/fleet.conffiles"
	[ "$(cat "$tmp/fleet.conffiles")" = /etc/keystone-fleet/fleet.toml ] ||
		fail "keystone-fleet ($arch): conffiles are '$(cat "$tmp/fleet.conffiles")', want /etc/keystone-fleet/fleet.toml"

	rm -rf "$tmp/root"
	mkdir -p "$tmp/root"
	dpkg-deb -x "$agent_deb" "$tmp/root"
	dpkg-deb -x "$fleet_deb" "$tmp/root"
	case $arch in
	amd64) want_machine=62 ;;  # EM_X86_64
	arm64) want_machine=183 ;; # EM_AARCH64
	esac
	for bin in "opt/keystone/releases/$VERSION/keystone-agent" "opt/keystone/releases/$VERSION/keystone-shim" usr/bin/keystonectl; do
		m=$(elf_machine "$tmp/root/$bin")
		[ "$m" = "$want_machine" ] || fail "$bin in the $arch package is for ELF machine $m, not $want_machine"
	done
	echo "== binaries are $arch ELF"

	echo "== lintian ($arch)"
	lintian --pedantic -I --tag-display-limit 0 --fail-on error,warning "$agent_deb" "$fleet_deb" ||
		fail "lintian reports errors or warnings for the $arch packages (above)"

	# The units against the package's files laid out as installed, over the
	# systemd units and /bin/kill of this machine.
	echo "== systemd-analyze verify ($arch)"
	ln -s "releases/$VERSION" "$tmp/root/opt/keystone/current"
	mkdir -p "$tmp/root/bin"
	cp -a /lib/systemd/system/. "$tmp/root/lib/systemd/system/"
	cp /bin/kill "$tmp/root/bin/kill"
	if ! systemd-analyze verify --root="$tmp/root" \
		/lib/systemd/system/keystone-agent.service /lib/systemd/system/keystone-fleet.service >"$tmp/verify" 2>&1 ||
		[ -s "$tmp/verify" ]; then
		cat "$tmp/verify" >&2
		fail "systemd-analyze verify complains about the units (above)"
	fi
	echo "systemd-analyze verify: keystone-agent.service and keystone-fleet.service: no complaint"
done
echo "package-check: PASS ($*)"
