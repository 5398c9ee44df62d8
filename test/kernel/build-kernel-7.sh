#!/bin/sh
# build-kernel-7.sh CACHE TOOL SOURCE_TARBALL
#
# Builds the two Linux 7.x test kernels of the ML-DSA rows (issue 11) from
# SOURCE_TARBALL (sid's linux-source-7.2) into CACHE and prints the directory
# holding them on its last line of stdout. TOOL is a dkms-sign-hook binary:
# its `keygen` makes every trusted key, so the kernel's certs/ reads what
# keygen writes.
#
#   CACHE/certs-7/<name>/signing_key.{pem,x509,der}   keygen's keys, made once:
#       rsa4096, p384, mldsa44, mldsa65, mldsa87 (trusted), mldsa65-attacker (not)
#   CACHE/certs-7/trusted.pem        the certificates compiled in
#   CACHE/kernel7-<key>/src          the built tree (for M= builds)
#   CACHE/kernel7-<key>/bzImage-waiver  PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA=y, in-kernel xz
#   CACHE/kernel7-<key>/bzImage-strict  without the waiver (7.x's default), in-kernel zstd
#   CACHE/kernel7-<key>/done         written last
#
# <key> hashes the tarball, this script, the config fragment and the trusted
# certificates. Concurrent runs serialise on CACHE/lock-7.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: build-kernel-7.sh CACHE TOOL SOURCE_TARBALL" >&2
	exit 2
fi
cache=$1
tool=$2
src=$3
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/testdata/kernel-7.config
jobs=${KERNEL_JOBS:-$(($(nproc) + 1))}

mkdir -p "$cache"
exec 9>"$cache/lock-7"
flock 9

certs=$cache/certs-7
if [ ! -f "$certs/done" ]; then
	rm -rf "$certs.tmp"
	mkdir -p "$certs.tmp"
	"$tool" keygen --type rsa --cn "trusted RSA-4096 (7.x)" --out "$certs.tmp/rsa4096" >/dev/null
	"$tool" keygen --type ecdsa --curve P-384 --cn "trusted P-384 (7.x)" --out "$certs.tmp/p384" >/dev/null
	for l in 44 65 87; do
		"$tool" keygen --type "mldsa$l" --cn "trusted ML-DSA-$l" --out "$certs.tmp/mldsa$l" >/dev/null
	done
	"$tool" keygen --type mldsa65 --cn "attacker ML-DSA-65 (not trusted)" --out "$certs.tmp/mldsa65-attacker" >/dev/null
	touch "$certs.tmp/done"
	rm -rf "$certs"
	mv "$certs.tmp" "$certs"
fi
cat "$certs/rsa4096/signing_key.x509" "$certs/p384/signing_key.x509" \
	"$certs/mldsa44/signing_key.x509" "$certs/mldsa65/signing_key.x509" \
	"$certs/mldsa87/signing_key.x509" >"$certs/trusted.pem.tmp"
if cmp -s "$certs/trusted.pem.tmp" "$certs/trusted.pem"; then
	rm "$certs/trusted.pem.tmp"
else
	chmod 0644 "$certs/trusted.pem.tmp"
	mv "$certs/trusted.pem.tmp" "$certs/trusted.pem"
fi

key=$(
	{
		sha256sum <"$src"
		grep -v '^[[:space:]]*#' "$0" | sha256sum
		sha256sum <"$fragment"
		sha256sum <"$certs/trusted.pem"
	} | sha256sum | cut -c1-16
)
out=$cache/kernel7-$key
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

start=$(date +%s)
rm -rf "$out"
mkdir -p "$out/src"
tar -xf "$src" -C "$out/src" --strip-components=1
cd "$out/src"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >&2
scripts/config --set-str SYSTEM_TRUSTED_KEYS "$certs/trusted.pem"

kernel() { # name compression waiver(y|n)
	for f in GZIP XZ ZSTD; do scripts/config --disable "MODULE_COMPRESS_$f"; done
	scripts/config --enable "MODULE_COMPRESS_$2" --disable MODULE_COMPRESS_ALL
	if [ "$3" = y ]; then
		scripts/config --enable PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA
	else
		scripts/config --disable PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA
	fi
	make -s olddefconfig >&2
	missing=$(grep '^CONFIG_' "$fragment" | grep -vxF -f .config || true)
	if [ -n "$missing" ]; then
		echo "build-kernel-7.sh: options dropped by olddefconfig:" $missing >&2
		exit 1
	fi
	grep -qx "CONFIG_MODULE_COMPRESS_$2=y" .config ||
		{ echo "build-kernel-7.sh: MODULE_COMPRESS_$2 not set" >&2; exit 1; }
	if [ "$3" = y ]; then
		grep -qx CONFIG_PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA=y .config ||
			{ echo "build-kernel-7.sh: the waiver did not survive olddefconfig" >&2; exit 1; }
	elif grep -q '^CONFIG_PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA=y' .config; then
		echo "build-kernel-7.sh: the waiver is on in the strict kernel" >&2
		exit 1
	fi
	t0=$(date +%s)
	make -s -j"$jobs" bzImage modules >&2
	cp arch/x86/boot/bzImage "$out/bzImage-$1"
	cp .config "$out/config-$1"
	echo "build-kernel-7.sh: $1 kernel built in $(($(date +%s) - t0)) s" >&2
}
kernel waiver XZ y
kernel strict ZSTD n
make -s -j"$jobs" modules_prepare >&2
echo "build-kernel-7.sh: 7.x kernels built in $(($(date +%s) - start)) s" >&2
touch "$out/done"
echo "$out"
