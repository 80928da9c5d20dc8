#!/bin/sh
# package-test.sh DIST: installs, upgrades, removes and purges the keystone
# and keystone-fleet packages in a minimal Debian made by debootstrap, twice
# in a row in the same root, and checks the files, accounts and links after
# every step. systemd does not run there, so the maintainer scripts take
# their path for chroots and containers.
#
# It builds two versions for this machine's architecture: the tree's own
# version (packaging/version.sh) and the same with "+pkgtest2" appended,
# which sorts higher, as the upgrade.
#
# Needs root, debootstrap, unshare, chroot and ip (the agent's loopback). The pristine root is cached
# as a tarball in PACKAGE_TEST_CACHE (default ~/.cache/keystone/package-test)
# and made again only when missing. DEBIAN_MIRROR and DEBIAN_SUITE default
# to this machine's own apt source and release.
#
# Outside CI, a missing tool that cannot be installed skips the test with a
# loud reason; with CI=true it fails instead.
set -eu

cd "$(dirname "$0")/../.."
repo=$(pwd)
dist=${1:?usage: package-test.sh DIST}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
start=$(date +%s)

log() { echo "package-test: $*"; }
fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}
skip() {
	if [ "${CI:-}" = true ]; then
		fail "$* (CI must run this test)"
	fi
	echo "" >&2
	echo "package-test: SKIPPED: $*" >&2
	echo "" >&2
	exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (chroot, unshare, debootstrap)"
for tool in debootstrap unshare chroot dpkg ip; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (apt-get install debootstrap util-linux dpkg iproute2)"
done
unshare --mount --pid --fork true 2>/dev/null || skip "unshare cannot make mount and pid namespaces here"

arch=$(dpkg --print-architecture)
case $arch in
amd64 | arm64) ;;
*) skip "this machine is $arch; the packages are built for amd64 and arm64" ;;
esac

# --- The two versions -------------------------------------------------

V1=$(packaging/version.sh)
V2=$V1+pkgtest2
dpkg --compare-versions "$V2" gt "$V1" || fail "$V2 does not sort after $V1"
pkgs=$dist/package-test
rm -rf "$pkgs"
mkdir -p "$pkgs/v1" "$pkgs/v2"
if [ -f "$dist/keystone_${V1}_$arch.deb" ] && [ -f "$dist/keystone-fleet_${V1}_$arch.deb" ]; then
	cp "$dist/keystone_${V1}_$arch.deb" "$dist/keystone-fleet_${V1}_$arch.deb" "$pkgs/v1/"
else
	VERSION=$V1 packaging/build.sh "$pkgs/v1" "$arch" >/dev/null
fi
log "building $V2 (the upgrade)"
VERSION=$V2 packaging/build.sh "$pkgs/v2" "$arch" >/dev/null

# --- The root ---------------------------------------------------------

suite=${DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || skip "DEBIAN_SUITE is not set and /etc/os-release names no codename"
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && command -v apt-get >/dev/null 2>&1; then
	mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk -v s="$suite" '$2 == s {print $1; exit}')
fi
[ -n "$mirror" ] || skip "no Debian mirror: set DEBIAN_MIRROR (this machine's apt sources name none for $suite)"

# The packages the maintainer scripts and the dependencies need beyond
# minbase; part of the cache's name, so that a change makes a new one.
include=adduser,procps
cache=${PACKAGE_TEST_CACHE:-${HOME:-/root}/.cache/keystone/package-test}
tarball=$cache/$suite-$arch-minbase-$(echo "$include" | tr ',' '+').tar.gz
if [ ! -s "$tarball" ]; then
	log "debootstrap --variant=minbase $suite (cached afterwards in $tarball)"
	mkdir -p "$cache"
	fresh=$(mktemp -d "$cache/debootstrap.XXXXXX")
	if ! debootstrap --variant=minbase --include="$include" "$suite" "$fresh/root" "$mirror" >"$fresh/log" 2>&1; then
		tail -n 30 "$fresh/log" >&2
		rm -rf "$fresh"
		fail "debootstrap $suite from $mirror failed (above)"
	fi
	tar -C "$fresh/root" --numeric-owner -czf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
	rm -rf "$fresh"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/keystone-package-test.XXXXXX")
root=$work/root
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$root"
tar -C "$root" --numeric-owner -xzf "$tarball"
mkdir -p "$root/pkgs"
cp "$pkgs"/v1/*.deb "$pkgs"/v2/*.deb "$root/pkgs/"
[ ! -e "$root/run/systemd/system" ] || fail "the root has /run/systemd/system: the scripts would think systemd runs"
log "root ready in $root ($(($(date +%s) - start))s so far)"

# --- Helpers ----------------------------------------------------------

# in_root CMD...: CMD in the root, in namespaces of its own (mounts, pids,
# network with only a loopback), with /proc mounted: whatever it starts
# ends with it, and nothing it does reaches this machine's processes or
# network.
in_root() {
	unshare --mount --pid --net --fork --kill-child \
		sh -c 'root=$1; shift; ip link set lo up && mount -t proc proc "$root/proc" && exec chroot "$root" "$@"' \
		sh "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
}

# step NAME CMD...: runs a dpkg step; every maintainer script must succeed.
step() {
	name=$1
	shift
	log "round $round: $name"
	if ! in_root "$@" </dev/null >"$work/step.log" 2>&1; then
		cat "$work/step.log" >&2
		fail "round $round: $name: '$*' failed (above)"
	fi
	sed 's/^/    /' "$work/step.log"
}

assert_status() { # package, dpkg status
	got=$(chroot "$root" dpkg-query -W -f='${Status}' "$1" 2>/dev/null || echo "not-installed")
	[ "$got" = "$2" ] || fail "round $round: $1 is '$got', want '$2'"
}
assert_file() { # path, mode, owner:group
	[ -f "$root$1" ] || fail "round $round: $1 is not a file"
	assert_stat "$@"
}
assert_dir() {
	[ -d "$root$1" ] && [ ! -L "$root$1" ] || fail "round $round: $1 is not a folder"
	assert_stat "$@"
}
assert_stat() {
	got=$(chroot "$root" stat -c '%a %U:%G' "$1")
	[ "$got" = "$2 $3" ] || fail "round $round: $1 is '$got', want '$2 $3'"
}
assert_absent() {
	[ ! -e "$root$1" ] && [ ! -L "$root$1" ] || fail "round $round: $1 exists, and should not"
}
assert_link() { # path, target
	[ -L "$root$1" ] || fail "round $round: $1 is not a symlink"
	got=$(readlink "$root$1")
	[ "$got" = "$2" ] || fail "round $round: $1 -> $got, want -> $2"
}
assert_account() { # name, home
	pw=$(chroot "$root" getent passwd "$1") || fail "round $round: no user $1"
	uid=$(echo "$pw" | cut -d: -f3)
	home=$(echo "$pw" | cut -d: -f6)
	shell=$(echo "$pw" | cut -d: -f7)
	[ "$uid" -lt 1000 ] || fail "round $round: user $1 has uid $uid, not a system uid"
	[ "$home" = "$2" ] || fail "round $round: user $1 has home $home, want $2"
	[ "$shell" = /usr/sbin/nologin ] || fail "round $round: user $1 has shell $shell, want /usr/sbin/nologin"
	gid=$(echo "$pw" | cut -d: -f4)
	grp=$(chroot "$root" getent group "$1") || fail "round $round: no group $1"
	[ "$(echo "$grp" | cut -d: -f3)" = "$gid" ] || fail "round $round: user $1's primary group is not $1"
}
assert_contains() { # path, text
	grep -qF -- "$2" "$root$1" || fail "round $round: $1 does not contain '$2'"
}
assert_output() { # text, CMD...: CMD prints text
	want=$1
	shift
	got=$(in_root "$@" 2>&1) || fail "round $round: '$*' failed: $got"
	case $got in
	*"$want"*) ;;
	*) fail "round $round: '$*' printed '$got', want '$want' in it" ;;
	esac
}
assert_fails() { # text, CMD...: CMD fails and says text
	want=$1
	shift
	if got=$(in_root "$@" 2>&1); then
		fail "round $round: '$*' succeeded, want a failure saying '$want'"
	fi
	case $got in
	*"$want"*) ;;
	*) fail "round $round: '$*' said '$got', want '$want' in it" ;;
	esac
}
wants_link=/etc/systemd/system/multi-user.target.wants

assert_agent_installed() { # version current points to
	assert_status keystone "install ok installed"
	assert_file /usr/bin/keystonectl 755 root:root
	assert_file "/opt/keystone/releases/$1/keystone-agent" 755 root:root
	assert_file "/opt/keystone/releases/$1/keystone-shim" 755 root:root
	assert_link /opt/keystone/current "releases/$1"
	assert_output "keystone-agent $1 " /opt/keystone/current/keystone-agent version
	assert_file /lib/systemd/system/keystone-agent.service 644 root:root
	assert_file /usr/lib/keystone/agent-provisioned 755 root:root
	assert_file /etc/keystone/agent.toml 644 root:root
	[ "$(chroot "$root" dpkg-query -W -f='${Conffiles}' keystone | awk 'NF {print $1}')" = /etc/keystone/agent.toml ] ||
		fail "round $round: agent.toml is not keystone's conffile"
	assert_account keystone /var/lib/keystone
	assert_dir /var/lib/keystone 750 keystone:keystone
	assert_link "$wants_link/keystone-agent.service" /lib/systemd/system/keystone-agent.service
	assert_absent /opt/keystone/current.dpkg-new
	for keep in "$root"/opt/keystone/releases/.dpkg-keep-*; do
		[ ! -e "$keep" ] || fail "round $round: $keep is left over"
	done
}

assert_fleet_installed() {
	assert_status keystone-fleet "install ok installed"
	assert_file /lib/systemd/system/keystone-fleet.service 644 root:root
	assert_file /usr/lib/keystone-fleet/fleet-configured 755 root:root
	assert_file /etc/keystone-fleet/fleet.toml 644 root:root
	assert_account keystone-fleet /var/lib/keystone-fleet
	assert_dir /var/lib/keystone-fleet 750 keystone-fleet:keystone-fleet
	assert_link "$wants_link/keystone-fleet.service" /lib/systemd/system/keystone-fleet.service
	assert_fails "sets no broker" /usr/lib/keystone-fleet/fleet-configured /etc/keystone-fleet/fleet.toml
}

# The agent as provisioned, for a few seconds: it starts with the shipped
# configuration plus a device_id, answers keystonectl on its socket, and
# stops cleanly on SIGTERM.
smoke_agent() {
	log "round $round: the installed agent runs with the shipped agent.toml"
	in_root sh -c '
		/opt/keystone/current/keystone-agent run --config /etc/keystone/agent.toml 2>/tmp/agent.log &
		pid=$!
		i=0
		until grep -q "agent ready" /tmp/agent.log; do
			i=$((i + 1))
			if [ $i -gt 150 ] || ! kill -0 $pid 2>/dev/null; then
				cat /tmp/agent.log; echo "the agent did not get ready"; exit 1
			fi
			sleep 0.2
		done
		keystonectl component list || { cat /tmp/agent.log; exit 1; }
		kill -TERM $pid
		wait $pid || { cat /tmp/agent.log; echo "the agent exited $? after SIGTERM"; exit 1; }
	' </dev/null >"$work/smoke.log" 2>&1 || {
		cat "$work/smoke.log" >&2
		fail "round $round: the packaged agent did not run (above)"
	}
	sed 's/^/    /' "$work/smoke.log"
	assert_file /var/lib/keystone/keystone.db 644 root:root
}

k1=/pkgs/keystone_${V1}_$arch.deb
f1=/pkgs/keystone-fleet_${V1}_$arch.deb
k2=/pkgs/keystone_${V2}_$arch.deb
f2=/pkgs/keystone-fleet_${V2}_$arch.deb

# --- The rounds -------------------------------------------------------

for round in 1 2; do
	step "install keystone $V1" dpkg -i "$k1"
	assert_agent_installed "$V1"
	assert_fails "names no device_id" /usr/lib/keystone/agent-provisioned /etc/keystone/agent.toml

	step "install keystone $V1 again" dpkg -i "$k1"
	assert_agent_installed "$V1"

	# What provisioning does at the least.
	echo 'device_id = "pkgtest-1"' >>"$root/etc/keystone/agent.toml"
	in_root /usr/lib/keystone/agent-provisioned /etc/keystone/agent.toml ||
		fail "round $round: agent-provisioned refuses a provisioned agent.toml"
	smoke_agent

	step "install keystone-fleet $V1" dpkg -i "$f1"
	assert_fleet_installed

	step "upgrade both to $V2" dpkg -i "$k2" "$f2"
	assert_agent_installed "$V2"
	assert_fleet_installed
	# The outgoing release stays, for the agent's way back.
	assert_file "/opt/keystone/releases/$V1/keystone-agent" 755 root:root
	assert_file "/opt/keystone/releases/$V1/.dpkg-kept" 644 root:root
	assert_output "keystone-agent $V1 " "/opt/keystone/releases/$V1/keystone-agent" version
	# The provisioned conffile and the agent's data are kept.
	assert_contains /etc/keystone/agent.toml 'device_id = "pkgtest-1"'
	assert_file /var/lib/keystone/keystone.db 644 root:root

	# The agent updated itself to a newer release: the package leaves
	# current there, and keeps only what current needs of its own.
	mkdir -p "$root/opt/keystone/releases/99.0.0"
	cp -a "$root/opt/keystone/releases/$V2/." "$root/opt/keystone/releases/99.0.0/"
	ln -sfn releases/99.0.0 "$root/opt/keystone/current"
	step "reinstall $V2 with the agent on its own newer release" dpkg -i "$k2"
	grep -qF "newer than this package's $V2" "$work/step.log" ||
		fail "round $round: postinst did not say why it left current on the agent's own release"
	assert_link /opt/keystone/current releases/99.0.0
	assert_file "/opt/keystone/releases/$V2/keystone-agent" 755 root:root
	assert_absent "/opt/keystone/releases/$V1"

	step "remove both" dpkg -r keystone-fleet keystone
	assert_status keystone "deinstall ok config-files"
	assert_status keystone-fleet "deinstall ok config-files"
	assert_absent /usr/bin/keystonectl
	assert_absent /opt/keystone/current
	assert_absent "/opt/keystone/releases/$V2"
	assert_absent /lib/systemd/system/keystone-agent.service
	assert_absent /lib/systemd/system/keystone-fleet.service
	# Kept until purge: configuration, data, accounts, the agent's own release.
	assert_contains /etc/keystone/agent.toml 'device_id = "pkgtest-1"'
	assert_file /etc/keystone-fleet/fleet.toml 644 root:root
	assert_dir /var/lib/keystone 750 keystone:keystone
	assert_file /var/lib/keystone/keystone.db 644 root:root
	assert_dir /var/lib/keystone-fleet 750 keystone-fleet:keystone-fleet
	assert_file /opt/keystone/releases/99.0.0/keystone-agent 755 root:root
	assert_account keystone /var/lib/keystone
	assert_account keystone-fleet /var/lib/keystone-fleet

	step "purge both" dpkg -P keystone-fleet keystone
	assert_status keystone "not-installed"
	assert_status keystone-fleet "not-installed"
	for gone in /etc/keystone /var/lib/keystone /opt/keystone /run/keystone /etc/keystone-fleet/fleet.toml \
		/var/lib/keystone-fleet /usr/lib/keystone /usr/lib/keystone-fleet \
		"$wants_link/keystone-agent.service" "$wants_link/keystone-fleet.service" \
		/etc/systemd/system/keystone-agent.service /etc/systemd/system/keystone-fleet.service \
		/var/lib/systemd/deb-systemd-helper-enabled/keystone-agent.service.dsh-also \
		/var/lib/systemd/deb-systemd-helper-enabled/keystone-fleet.service.dsh-also; do
		assert_absent "$gone"
	done
	# System accounts stay after a purge (docs/install.md says why).
	assert_account keystone /var/lib/keystone
	assert_account keystone-fleet /var/lib/keystone-fleet
	log "round $round: passed"
done

log "install, reinstall, upgrade, remove and purge of keystone and keystone-fleet $V1 -> $V2 ($arch), twice, in $(($(date +%s) - start))s"
echo "package-test: 2 passed, 0 failed"
