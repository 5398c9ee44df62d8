#!/bin/sh
# road.sh WORK TOOL KVER MODSRC GRUB: what a user does on a Secure Boot machine,
# the commands of README.md's "Secure Boot in five minutes", plus the builds
# of the suite's other rows. Run by secureboot_test.go under
# `unshare -m --propagation private`: the mounts below exist only in this
# process's mount namespace and vanish with it. /usr and /etc are overlays
# (the tool is installed where its .deb puts it; keygen writes into
# /etc/dkms-sign-hook), /etc/dkms and /var/lib/dkms are empty directories of
# the test's, so the host's DKMS state is neither read nor changed.
#
# Each command's output goes to WORK/out/<step>.txt (and its exit status to
# <step>.rc), for the test to check and README.md to quote.
set -eu
work=$1 tool=$2 kver=$3 modsrc=$4 grub=$5
here=$(cd "$(dirname "$0")" && pwd)

for d in usr etc; do
	mkdir -p "$work/$d-upper" "$work/$d-work"
	mount -t overlay "overlay-$d" -o "lowerdir=/$d,upperdir=$work/$d-upper,workdir=$work/$d-work" "/$d"
done
mkdir -p "$work/etc-dkms/framework.conf.d" "$work/var-lib-dkms" "$work/out"
: >"$work/etc-dkms/framework.conf"
mount --bind "$work/etc-dkms" /etc/dkms
mount --bind "$work/var-lib-dkms" /var/lib/dkms

# What the .deb installs (Makefile's install target).
install -D -m 0755 "$tool" /usr/sbin/dkms-sign-hook
install -d -m 0755 /usr/lib/dkms-sign-hook
ln -sfn ../../sbin/dkms-sign-hook /usr/lib/dkms-sign-hook/sign-file
install -D -m 0644 "$here/../../contrib/dkms/dkms-override.conf" /usr/share/dkms-sign-hook/dkms-override.conf

# step NAME CMD...: run a command, keep its output and exit status.
step() {
	name=$1
	shift
	echo "\$ $*" >"$work/out/$name.txt"
	rc=0
	"$@" >>"$work/out/$name.txt" 2>&1 || rc=$?
	echo "$rc" >"$work/out/$name.rc"
	return 0
}
# must: step, failing the script if the command fails.
must() {
	step "$@"
	if [ "$(cat "$work/out/$1.rc")" != 0 ]; then
		cat "$work/out/$1.txt" >&2
		exit 1
	fi
}

# A DKMS package of the test module, in /usr/src as packages put it.
package() {
	mkdir -p "/usr/src/$1-1.0"
	cp "$modsrc/dshtest.c" "/usr/src/$1-1.0/"
	echo 'obj-m := dshtest.o' >"/usr/src/$1-1.0/Kbuild"
	cat >"/usr/src/$1-1.0/dkms.conf" <<-EOF
		PACKAGE_NAME=$1
		PACKAGE_VERSION=1.0
		BUILT_MODULE_NAME[0]=dshtest
		DEST_MODULE_LOCATION[0]=/updates/dkms
		AUTOINSTALL=yes
		MAKE[0]="make -C \${kernel_source_dir} M=\${dkms_tree}/\${PACKAGE_NAME}/\${PACKAGE_VERSION}/build modules"
		CLEAN=true
	EOF
	must "add-$1" dkms add "$1/1.0"
}
# module PKG: the package's built module, as DKMS left it (dkms 3.2
# compresses it before POST_BUILD: dshtest.ko.xz).
module() { ls "/var/lib/dkms/$1/1.0/$kver/x86_64/module/"dshtest.ko*; }
# flip FILE OFFSET: invert one byte of FILE.
flip() {
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# tamper PKG: change one byte of the built module after it was signed,
# inside its compression.
tamper() {
	f=$(module "$1")
	case "$f" in
	*.xz) xz -d "$f" && flip "${f%.xz}" 100 && xz --check=crc32 --lzma2=dict=1MiB "${f%.xz}" ;;
	*.zst) zstd -q -d --rm "$f" && flip "${f%.zst}" 100 && zstd -q --rm "${f%.zst}" ;;
	*.gz) gzip -d "$f" && flip "${f%.gz}" 100 && gzip -n -9 "${f%.gz}" ;;
	*) flip "$f" 100 ;;
	esac
}

# The five minutes.
must keygen dkms-sign-hook keygen --out /etc/dkms-sign-hook --write-config /etc/dkms-sign-hook/dkms-sign-hook.conf
step enroll dkms-sign-hook enroll
package dshsb-hook
must enable dkms-sign-hook enable dshsb-hook
must build dkms build dshsb-hook/1.0 -k "$kver"
must status dkms-sign-hook status

# The same module, then modified after signing (one byte of its code).
package dshsb-tampered
must enable-tampered dkms-sign-hook enable dshsb-tampered
must build-tampered dkms build dshsb-tampered/1.0 -k "$kver"
tamper dshsb-tampered

# Not enabled: Debian's dkms signs with its own key, /var/lib/dkms/mok.key,
# which nobody enrolled.
package dshsb-dkms
must build-dkms dkms build dshsb-dkms/1.0 -k "$kver"
# Not signed at all.
package dshsb-unsigned
must build-unsigned dkms build dshsb-unsigned/1.0 -k "$kver"
must strip-unsigned dkms-sign-hook strip "$(module dshsb-unsigned)"

# A key that is only in the firmware's db (the machine owner enrolled it
# there, not as a MOK): re-sign that package's build with it.
must keygen-db dkms-sign-hook keygen --cn "dkms-sign-hook db test key" --out /etc/dkms-sign-hook/db --write-config /etc/dkms-sign-hook/db.conf
package dshsb-db
must build-db dkms build dshsb-db/1.0 -k "$kver"
must sign-db dkms-sign-hook sign --config /etc/dkms-sign-hook/db.conf --dkms --kernel "$kver" dshsb-db

# An ECDSA key (P-384), enrolled as a MOK like the first: Debian 12's kernel
# is built without CONFIG_CRYPTO_ECDSA.
must keygen-ecdsa dkms-sign-hook keygen --type ecdsa --cn "dkms-sign-hook ecdsa test key" --out /etc/dkms-sign-hook/ecdsa --write-config /etc/dkms-sign-hook/ecdsa.conf
package dshsb-ecdsa
must build-ecdsa dkms build dshsb-ecdsa/1.0 -k "$kver"
must sign-ecdsa dkms-sign-hook sign --config /etc/dkms-sign-hook/ecdsa.conf --dkms --kernel "$kver" dshsb-ecdsa

# The global route: DKMS's sign_file is the tool (every package from now on).
package dshsb-fw
must enable-framework dkms-sign-hook enable --framework
must build-fw dkms build dshsb-fw/1.0 -k "$kver"

# Debian's GRUB with its signature removed, then signed with keygen's key
# and with DKMS's own: shim starts a boot loader signed by any MOK unless
# the certificate is marked module signing only (keygen's are). dkms-key.conf
# has status look at DKMS's certificate.
openssl x509 -inform DER -in /var/lib/dkms/mok.pub -out /etc/dkms-sign-hook/dkms-mok.pem
printf '[signing]\nkey = /var/lib/dkms/mok.key\ncertificate = /var/lib/dkms/mok.pub\n' >/etc/dkms-sign-hook/dkms-key.conf
cp "$grub" "$work/grub-unsigned.efi"
must unsign-grub sbattach --remove "$work/grub-unsigned.efi"
must sign-grub-keygen sbsign --key /etc/dkms-sign-hook/signing_key.pem --cert /etc/dkms-sign-hook/signing_key.x509 \
	--output "$work/grub-keygen.efi" "$work/grub-unsigned.efi"
must sign-grub-dkms sbsign --key /var/lib/dkms/mok.key --cert /etc/dkms-sign-hook/dkms-mok.pem \
	--output "$work/grub-dkms.efi" "$work/grub-unsigned.efi"
# The control: keygen's key again, in a certificate without that usage.
must cert-noeku openssl req -new -x509 -key /etc/dkms-sign-hook/signing_key.pem -days 2 \
	-subj "/CN=keygen's key, not marked module signing only" \
	-addext keyUsage=digitalSignature -addext extendedKeyUsage=codeSigning -out /etc/dkms-sign-hook/noeku.pem
must sign-grub-noeku sbsign --key /etc/dkms-sign-hook/signing_key.pem --cert /etc/dkms-sign-hook/noeku.pem \
	--output "$work/grub-noeku.efi" "$work/grub-unsigned.efi"

# What the booted system needs, for the test to pack into the initramfs.
mkdir -p "$work/system"
cp -a /etc/dkms /etc/dkms-sign-hook "$work/system/"
rm -f "$work/system/dkms-sign-hook/signing_key.pem" "$work/system/dkms-sign-hook"/*/signing_key.pem
cp -a /var/lib/dkms "$work/system/var-lib-dkms"
rm -f "$work/system/var-lib-dkms/mok.key"
cp /usr/share/dkms-sign-hook/dkms-override.conf "$work/system/"
