#!/bin/sh
# Installs, from the running Debian release's archive, what the project needs.
#
#   install-deps.sh          everything the build and the tests use: the real
#                            components the tests compare against (sign-file,
#                            dkms, kmod, openssl, a 6.12 kernel source tree,
#                            QEMU, SoftHSM, ...) and the tools that build the
#                            kernel. Debian 12 and 13.
#   install-deps.sh --demo   only what `make demo` and `make build` need: dkms,
#                            the kernel headers (with that release's sign-file),
#                            a C compiler, openssl, kmod. Debian 11, 12 and 13.
#   --print                  print the package names instead of installing them.
#
# The names are chosen per release (/etc/os-release) and each is checked to
# exist under exactly that name first: apt-get would otherwise read a missing
# name with a dot in it as a pattern (Debian 13 has no linux-kbuild-6.1, and
# apt installs linux-kbuild-6.12.* for it). sign-file comes with the headers:
# linux-headers-amd64 depends on the release's linux-kbuild-*.
set -eu
export DEBIAN_FRONTEND=noninteractive

demo=false print=false
for a in "$@"; do
	case "$a" in
	--demo) demo=true ;;
	--print) print=true ;;
	*) echo "usage: $0 [--demo] [--print]" >&2; exit 2 ;;
	esac
done

# What `make build` and `make demo` need, on every release.
demo_pkgs="build-essential make dkms kmod linux-headers-amd64 openssl xz-utils zstd gzip"

# What the tests add: kernel build tools, QEMU and firmware, tokens, packaging,
# debootstrap for the other releases' roots (test/generations).
test_pkgs="bc bison flex cpio dwarves libelf-dev libssl-dev python3 rsync
	qemu-system-x86 busybox-static ovmf mtools dosfstools fdisk python3-cryptography sbsigntool
	softhsm2 opensc keyutils mokutil time
	p11-kit p11-kit-modules openssh-server openssh-client systemd iproute2 util-linux
	debhelper dh-golang lintian debootstrap debian-archive-keyring"

. /etc/os-release
release="${VERSION_CODENAME:-}"
case "$release" in
bullseye) # Debian 11: no 6.12 kernel source, so no kernel suite
	kernel_src="" ;;
bookworm) # Debian 12: linux-source-6.12 comes from bookworm-security
	kernel_src="linux-source-6.12" ;;
trixie) # Debian 13
	kernel_src="linux-source-6.12" ;;
*)
	echo "install-deps: ${PRETTY_NAME:-this system} is not a supported release (Debian 11, 12, 13)" >&2
	exit 1 ;;
esac

pkgs="$demo_pkgs"
if ! $demo; then
	if [ -z "$kernel_src" ]; then
		echo "install-deps: the full test suite needs Debian 12 or 13 (a 6.12 kernel source); on ${PRETTY_NAME:-$release} use: $0 --demo" >&2
		exit 1
	fi
	pkgs="$pkgs $test_pkgs $kernel_src"
fi

$print || apt-get update

# Refuse a name the release does not have, rather than let apt match it.
missing=""
for p in $pkgs; do
	apt-cache pkgnames "$p" | grep -qxF "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: ${PRETTY_NAME:-$release} has no package named:$missing (run apt-get update first?)" >&2
	exit 1
fi

if $print; then
	echo $pkgs
	exit 0
fi
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $pkgs
