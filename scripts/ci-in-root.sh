#!/bin/bash
# Runs the repository's CI (.ci/run: install-deps.sh, then `make test` with
# CI=true) on a fresh Debian machine of another release, made here with
# debootstrap. A developer's tool, not part of `make test` (it runs it).
#
#   sudo scripts/ci-in-root.sh RELEASE [options] [-- COMMAND...]
#
#   RELEASE       bullseye, bookworm, trixie or sid
#   --cache DIR   the test cache bound read-write at the same path inside the
#                 root, so kernels and Debian roots built before are reused
#                 (default /var/cache/dkms-sign-hook-test; the suite locks
#                 what it shares in there)
#   --no-cache    no host cache: the root starts cold, like a new CI machine
#   --keep        keep the root afterwards (printed), to look at or --reuse
#   --reuse DIR   run in a root kept by --keep instead of making a new one
#   --log FILE    also write the output there (default /var/tmp/ci-in-root-RELEASE-TIME.log)
#   COMMAND       run this in the checkout instead of .ci/run (stdin is
#                 /dev/null), e.g. -- /usr/local/go/bin/go build ./...
#
# What the root is: `debootstrap --variant=minbase`, the release's main,
# -updates and -security suites, git and ca-certificates (plus the host's own
# CAs from /usr/local/share/ca-certificates, as an admin of a machine on this
# network would add them: Go's module downloads verify TLS with them), the
# host's resolv.conf, a clean clone of the checkout's HEAD (commit first) in
# /root/src, and the host's Go at /usr/local/go, bound read-only. Package scripts start no
# daemons (policy-rc.d). Go's module and build caches start empty.
#
# How it is entered, each time: a private mount and PID namespace (unshare
# -m --propagation private -p), so every mount dies with the command and
# nothing reaches the host; in it the root bound on itself (a mount point,
# as / is on a real machine), its own /proc, /sys, a tmpfs /dev with null
# zero full random urandom tty, a devpts instance of its own (ptmx) and a
# tmpfs /dev/shm, a tmpfs /run; then pivot_root into it, the host's tree
# detached (a test that makes namespaces and enters them with nsenter must
# find the root there, not the host). The root is removed at the end only when /proc/self/mountinfo shows nothing mounted
# below it, with rm --one-file-system.
set -euo pipefail

die() { echo "ci-in-root: $*" >&2; exit 1; }
usage() { sed -n '/^#   sudo/,/^#   COMMAND/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

[ $# -ge 1 ] || usage
release=$1
shift
case "$release" in
bullseye | bookworm | trixie | sid) ;;
*) usage ;;
esac
cache=/var/cache/dkms-sign-hook-test keep=false reuse="" log=""
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=${2:?}; shift 2 ;;
	--no-cache) cache=""; shift ;;
	--keep) keep=true; shift ;;
	--reuse) reuse=${2:?}; keep=true; shift 2 ;;
	--log) log=${2:?}; shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(./.ci/run)

[ "$(id -u)" = 0 ] || die "run as root (it mounts and chroots)"
for t in debootstrap unshare chroot git; do
	command -v "$t" >/dev/null || die "no $t (apt-get install debootstrap util-linux coreutils git)"
done
[ -x /usr/local/go/bin/go ] || die "no Go at /usr/local/go (the root uses the host's, read-only)"
[ -z "$cache" ] || [ -d "$cache" ] || die "no test cache $cache (make it, or --no-cache)"
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
mirror=http://deb.debian.org/debian
log=${log:-/var/tmp/ci-in-root-$release-$(date -u +%Y%m%dT%H%M%SZ).log}

# mounted DIR: the mount points at or below DIR in this mount namespace.
mounted() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo; }

if [ -n "$reuse" ]; then
	work=$(cd "$reuse" && pwd)
	[ -f "$work/root/etc/debian_version" ] || die "$reuse: no root made by --keep"
else
	work=$(mktemp -d "/var/tmp/ci-in-root-$release.XXXXXX")
fi
root=$work/root

cleanup() {
	local m
	m=$(mounted "$work")
	if [ -n "$m" ]; then
		echo "ci-in-root: still mounted, so NOT removed: $m" >&2
	elif $keep; then
		echo "ci-in-root: kept $work (--reuse $work)" >&2
	else
		rm -rf --one-file-system -- "$work"
	fi
}
trap cleanup EXIT

# enter [VAR=VALUE...] COMMAND...: runs COMMAND in the root, as root, in a
# clean environment, from /root/src.
enter() {
	unshare --mount --pid --fork --kill-child --propagation private \
		/bin/sh -c "$setup" ci-in-root-setup "$root" "$cache" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb \
		"$@"
}
# shellcheck disable=SC2016 # expanded by that shell
setup='set -e
R=$1 C=$2; shift 2
# The root is a mount point, as / is on a real machine (pivot_root needs
# one, and so does unshare --propagation private in the tests).
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid,size=64m ci-dev "$R/dev"
mk() { mknod -m 666 "$R/dev/$1" c "$2" "$3"; }
mk null 1 3; mk zero 1 5; mk full 1 7; mk random 1 8; mk urandom 1 9; mk tty 5 0
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 ci-pts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev ci-shm "$R/dev/shm"
for l in ptmx:pts/ptmx fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
	ln -s "${l#*:}" "$R/dev/${l%%:*}"
done
mount -t tmpfs -o mode=0755,nosuid,nodev ci-run "$R/run"
mkdir -p "$R/run/lock" "$R/usr/local/go"
mount --bind -o ro /usr/local/go "$R/usr/local/go"
if [ -n "$C" ]; then
	mkdir -p "$R$C"
	mount --bind "$C" "$R$C"
fi
# The root becomes the / of the namespace (pivot_root, not chroot): a test
# that enters a namespace it made (nsenter --mount) lands at the / of that
# namespace, which must be the root, never the host.
mkdir "$R/run/ci-old-root"
cd "$R"
pivot_root . run/ci-old-root
umount -l /run/ci-old-root
rmdir /run/ci-old-root
# Not exec: this shell stays PID 1 of the namespace and reaps orphans.
/bin/sh -c "cd /root/src 2>/dev/null || cd /; exec /usr/bin/env -i \"\$@\"" ci-in-root "$@"
'

{
	echo "ci-in-root: $release root in $root, $(git -C "$src" log -1 --format='%h %s' HEAD)"
	start=$(date +%s)
	if [ -z "$reuse" ]; then
		chmod 0755 "$work"
		# debootstrap mounts /proc and /sys in the target itself: in a
		# namespace of its own, so nothing it leaves reaches the host.
		unshare --mount --propagation private --kill-child \
			debootstrap --variant=minbase "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
			{ tail -20 "$work/debootstrap.log"; die "debootstrap $release failed"; }
		[ -z "$(mounted "$work")" ] || die "debootstrap left mounts below $work"
		suites="$release $release-updates"
		[ "$release" = sid ] && suites=sid
		rm -f "$root/etc/apt/sources.list"
		printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$mirror" "$suites" \
			>"$root/etc/apt/sources.list.d/debian.sources"
		[ "$release" = sid ] ||
			printf '\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: %s-security\nComponents: main\n' \
				"$release" >>"$root/etc/apt/sources.list.d/debian.sources"
		printf '#!/bin/sh\n# ci-in-root: no daemons started by package scripts\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
		chmod 0755 "$root/usr/sbin/policy-rc.d"
		[ -s "$root/etc/hosts" ] ||
			printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
		mkdir -p "$root/usr/local/share/ca-certificates"
		cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
		rm -f "$root/etc/resolv.conf"
		cp /etc/resolv.conf "$root/etc/resolv.conf"
		enter DEBIAN_FRONTEND=noninteractive /bin/sh -c \
			'apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates git && apt-get clean' \
			>"$work/prepare.log" 2>&1 || { tail -20 "$work/prepare.log"; die "installing git and ca-certificates failed"; }
		echo "ci-in-root: made the root in $(($(date +%s) - start)) s"
	fi
	rm -rf --one-file-system -- "$root/root/src"
	git clone -q --no-hardlinks "$src" "$root/root/src"
	git -C "$root/root/src" checkout -q --detach "$(git -C "$src" rev-parse HEAD)"
	echo "ci-in-root: running ${cmd[*]} in the $release root (cache: ${cache:-none}) at $(date -u +%H:%M:%S) UTC"
	t0=$(date +%s)
	rc=0
	enter CI=true "${cmd[@]}" </dev/null || rc=$?
	echo "ci-in-root: rc=$rc elapsed=$(($(date +%s) - t0)) s (${cmd[*]} in the $release root) at $(date -u +%H:%M:%S) UTC"
	exit $rc
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
