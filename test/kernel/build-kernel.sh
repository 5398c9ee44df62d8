#!/bin/sh
# build-kernel.sh CACHE TOOL [SOURCE_TARBALL]
#
# Builds the test kernel for test/kernel into CACHE (outside the checkout) and
# prints the directory holding the result on its last line of stdout. TOOL is
# a dkms-sign-hook binary (go build ./cmd/dkms-sign-hook): its `keygen` makes
# two of the trusted keys.
#
#   CACHE/certs/                    test keys (0600) and certificates, made once
#   CACHE/certs/keygen/{rsa4096,p384}/signing_key.{pem,x509,der}
#                                   keys made once by `TOOL keygen`
#   CACHE/certs/trusted.pem         the certificates compiled into the kernel
#   CACHE/kernel-<key>/src          the configured, built tree (for M= builds, dkms)
#   CACHE/kernel-<key>/bzImage-zstd kernels, one per in-kernel decompression format
#   CACHE/kernel-<key>/bzImage-xz
#   CACHE/kernel-<key>/bzImage-gzip
#   CACHE/kernel-<key>/done         written last: the build is complete
#
# <key> hashes the source tarball, this script, the config fragment and the
# trusted certificates, so a change to any of them builds a new kernel.
# Concurrent runs serialise on CACHE/lock.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: build-kernel.sh CACHE TOOL [SOURCE_TARBALL]" >&2
	exit 2
fi
cache=$1
tool=$2
src=${3:-/usr/src/linux-source-6.12.tar.xz}
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/testdata/kernel.config
jobs=${KERNEL_JOBS:-$(($(nproc) + 1))}

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

# --- test keys and certificates (generated once, kept in the cache) ----------
certs=$cache/certs
if [ ! -f "$certs/done" ]; then
	rm -rf "$certs.tmp"
	mkdir -p "$certs.tmp"
	(
		umask 077
		cd "$certs.tmp"
		gen() { # name cn openssl-newkey-args...
			name=$1 cn=$2
			shift 2
			openssl req -new -x509 -nodes -days 36500 -sha256 "$@" \
				-keyout "$name.key" -out "$name.crt" -subj "/O=dkms-sign-hook test/CN=$cn" \
				-addext "basicConstraints=critical,CA:FALSE" \
				-addext "keyUsage=digitalSignature" \
				-addext "subjectKeyIdentifier=hash" \
				-addext "authorityKeyIdentifier=keyid" 2>/dev/null
		}
		gen rsa2048 "trusted RSA-2048" -newkey rsa:2048
		gen rsa4096 "trusted RSA-4096" -newkey rsa:4096
		gen p256 "trusted ECDSA P-256" -newkey ec -pkeyopt ec_paramgen_curve:P-256
		gen p384 "trusted ECDSA P-384" -newkey ec -pkeyopt ec_paramgen_curve:P-384
		gen attacker "attacker (not trusted)" -newkey rsa:2048
		# Like Debian's dkms 3.0.10 makes /var/lib/dkms/mok.key + mok.pub (DER);
		# not compiled into the kernel.
		openssl req -new -x509 -nodes -days 36500 -newkey rsa:2048 \
			-subj "/CN=DKMS module signing key" -outform DER \
			-keyout dkms-mok.key -out dkms-mok.pub 2>/dev/null
		chmod 0600 ./*.key
		chmod 0644 ./*.crt ./*.pub
		touch done
	)
	rm -rf "$certs"
	mv "$certs.tmp" "$certs"
fi

# --- keys made by the tool under test, `dkms-sign-hook keygen` (once) ----------
# With its defaults (RSA-4096) and as ECDSA P-384: the kernel must trust what
# keygen writes (issue 5). Its private keys are 0600 and owned by root.
keygen=$certs/keygen
if [ ! -f "$keygen/done" ]; then
	rm -rf "$keygen.tmp"
	mkdir -p "$keygen.tmp"
	"$tool" keygen --out "$keygen.tmp/rsa4096" >/dev/null
	"$tool" keygen --type ecdsa --curve P-384 --out "$keygen.tmp/p384" >/dev/null
	touch "$keygen.tmp/done"
	rm -rf "$keygen"
	mv "$keygen.tmp" "$keygen"
fi

# --- the trusted certificates (CONFIG_SYSTEM_TRUSTED_KEYS) ---------------------
# Rewritten only when its content changes, so the built tree stays up to date.
cat "$certs/rsa2048.crt" "$certs/rsa4096.crt" "$certs/p256.crt" "$certs/p384.crt" \
	"$keygen/rsa4096/signing_key.x509" "$keygen/p384/signing_key.x509" >"$certs/trusted.pem.tmp"
if cmp -s "$certs/trusted.pem.tmp" "$certs/trusted.pem"; then
	rm "$certs/trusted.pem.tmp"
else
	chmod 0644 "$certs/trusted.pem.tmp"
	mv "$certs/trusted.pem.tmp" "$certs/trusted.pem"
fi

# --- cache key -----------------------------------------------------------------
key=$(
	{
		sha256sum <"$src"
		grep -v '^[[:space:]]*#' "$0" | sha256sum # comments do not count
		sha256sum <"$fragment"
		sha256sum <"$certs/trusted.pem"
	} | sha256sum | cut -c1-16
)
out=$cache/kernel-$key
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

# --- build ---------------------------------------------------------------------
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out/src"
tar -xf "$src" -C "$out/src" --strip-components=1
cd "$out/src"

make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >&2
scripts/config --set-str SYSTEM_TRUSTED_KEYS "$certs/trusted.pem"

variant() { # gzip|xz|zstd
	for f in GZIP XZ ZSTD; do scripts/config --disable "MODULE_COMPRESS_$f"; done
	scripts/config --enable "MODULE_COMPRESS_$(echo "$1" | tr a-z A-Z)"
	scripts/config --disable MODULE_COMPRESS_ALL
	make -s olddefconfig >&2
	# Every requested option must have survived olddefconfig.
	missing=$(grep '^CONFIG_' "$fragment" | grep -vxF -f .config || true)
	if [ -n "$missing" ]; then
		echo "build-kernel.sh: options dropped by olddefconfig:" $missing >&2
		exit 1
	fi
	grep -qx "CONFIG_MODULE_COMPRESS_$(echo "$1" | tr a-z A-Z)=y" .config ||
		{ echo "build-kernel.sh: MODULE_COMPRESS_$1 not set" >&2; exit 1; }
	t0=$(date +%s)
	make -s -j"$jobs" bzImage modules >&2
	cp arch/x86/boot/bzImage "$out/bzImage-$1"
	cp .config "$out/config-$1"
	echo "build-kernel.sh: $1 variant built in $(($(date +%s) - t0)) s" >&2
}
# zstd last: the tree is left configured like the kernel the module is built for
# (all variants share the version, so any one serves the M= build).
variant xz
variant gzip
variant zstd
make -s -j"$jobs" modules_prepare >&2
echo "build-kernel.sh: kernel cache built in $(($(date +%s) - start)) s" >&2
touch "$out/done"
echo "$out"
