#!/bin/sh
# build.sh OUTDIR ARCH...: cross-builds keystone-agent, keystone-shim and
# keystonectl for each Debian architecture (amd64, arm64) with
# CGO_ENABLED=0, and packs keystone_<version>_<arch>.deb and
# keystone-fleet_<version>_<arch>.deb into OUTDIR with nfpm (pinned in
# packaging/tools/go.mod, kept out of the agent's module).
#
# Environment: VERSION (default: packaging/version.sh), GO (default: go),
# MAINTAINER (the packages' Maintainer field), SOURCE_DATE_EPOCH (default:
# the time of the HEAD commit, so that a rebuild of one commit gives the
# same files).
set -eu

cd "$(dirname "$0")/.."
out=${1:?usage: build.sh OUTDIR ARCH...}
shift
[ $# -gt 0 ] || set -- amd64 arm64

GO=${GO:-go}
VERSION=$(packaging/version.sh)
MAINTAINER=${MAINTAINER:-KeyStone maintainers <keystone@keystone-edge.dev>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export VERSION MAINTAINER SOURCE_DATE_EPOCH

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/.build/$VERSION
rm -rf "$work"
mkdir -p "$work/tools" "$work/scripts/keystone" "$work/scripts/keystone-fleet"

echo "build.sh: nfpm (packaging/tools)"
"$GO" -C packaging/tools build -o "$work/tools/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm

# The maintainer scripts with the version filled in.
for f in packaging/keystone/preinst packaging/keystone/postinst packaging/keystone/prerm packaging/keystone/postrm \
	packaging/keystone-fleet/postinst packaging/keystone-fleet/prerm packaging/keystone-fleet/postrm; do
	dst=$work/scripts/${f#packaging/}
	sed "s/@VERSION@/$VERSION/g" "$f" >"$dst"
	chmod 0755 "$dst"
done

# One changelog entry: this build.
changelog() {
	date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	printf '%s (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
		"$1" "$VERSION" "$commit" "$MAINTAINER" "$date" | gzip -9n
}

for arch in "$@"; do
	case $arch in
	amd64 | arm64) goarch=$arch ;;
	*) echo "build.sh: unsupported architecture '$arch' (amd64, arm64)" >&2; exit 2 ;;
	esac
	stage=$work/$arch
	mkdir -p "$stage"
	echo "build.sh: binaries for linux/$goarch, version $VERSION"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch "$GO" build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$VERSION" -o "$stage/" \
		./cmd/keystone-agent ./cmd/keystone-shim ./cmd/keystonectl
	gzip -9n <packaging/keystone/keystonectl.1 >"$stage/keystonectl.1.gz"
	changelog keystone >"$stage/changelog.keystone.gz"
	changelog keystone-fleet >"$stage/changelog.keystone-fleet.gz"
	for pkg in keystone keystone-fleet; do
		# nfpm expands ${VAR} in most fields but not in the script paths.
		sed "s#\${SCRIPTS}#$work/scripts#g" "packaging/$pkg/nfpm.yaml" >"$stage/$pkg.nfpm.yaml"
		rm -f "$out/${pkg}_${VERSION}_$arch.deb"
		ARCH=$arch STAGE=$stage "$work/tools/nfpm" package --config "$stage/$pkg.nfpm.yaml" \
			--packager deb --target "$out/${pkg}_${VERSION}_$arch.deb"
		echo "build.sh: $out/${pkg}_${VERSION}_$arch.deb"
	done
done
