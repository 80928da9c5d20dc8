#!/bin/sh
# Prints the version of the packages and binaries built from this tree, a
# string that is both a valid Debian version and a valid path element:
#
#   tag v1.2.0 on HEAD            -> 1.2.0
#   5 commits after tag v1.2.0    -> 1.2.0+git5.gabc1234
#   tag v1.3.0-rc1                -> 1.3.0~rc1        (sorts before 1.3.0)
#   no tag at all                 -> 0.0.0+git177.gabc1234  (177 = commits in HEAD)
#
# Each later commit sorts higher (dpkg --compare-versions), so a build from a
# newer commit upgrades an older one. VERSION=... in the environment wins.
set -eu

if [ -n "${VERSION:-}" ]; then
	v=$VERSION
elif d=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.0-rc1-5-gabc1234: tag, commits since, hash
	hash=${d##*-}
	rest=${d%-*}
	count=${rest##*-}
	tag=${rest%-*}
	v=$(printf '%s' "${tag#v}" | tr '-' '~')
	[ "$count" = 0 ] || v="$v+git$count.$hash"
elif count=$(git rev-list --count HEAD 2>/dev/null) && hash=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	v="0.0.0+git$count.g$hash"
else
	echo "version.sh: not in a git checkout and VERSION is not set" >&2
	exit 1
fi

# Debian: starts with a digit, then only [A-Za-z0-9.+~]; no '-' (that would
# start a Debian revision), no '/' (it names a folder).
case $v in
[0-9]*) ;;
*) echo "version.sh: version '$v' must start with a digit" >&2; exit 1 ;;
esac
if printf '%s' "$v" | LC_ALL=C grep -q '[^A-Za-z0-9.+~]'; then
	echo "version.sh: version '$v' may hold only A-Z a-z 0-9 . + ~" >&2
	exit 1
fi
printf '%s\n' "$v"
