#!/bin/bash
# Sets everything up on a Debian 11, 12 or 13 machine and does the tool's main job on a
# real example: a DKMS package is built by the real dkms for the installed
# kernel headers, and its module comes out signed with your own key.
#
# It installs dkms-sign-hook (make install), makes a key in
# /etc/dkms-sign-hook unless one is there, enables the hook for the demo
# package only, builds and installs it, and shows the result. Undo with:
#   dkms remove dshdemo/1.0 --all; dkms-sign-hook disable dshdemo; rm -r /usr/src/dshdemo-1.0
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo $0)" >&2; exit 1; }
export PATH=/usr/local/go/bin:$PATH

step() { printf '\n=== %s\n' "$*"; }

# The tests that run the real dkms take this lock too: never run both at once.
exec 9>/run/lock/dkms-sign-hook-tests.lock
flock 9

step "Installing Debian packages (dkms, kernel headers, sign-file, openssl, ...)"
./scripts/install-deps.sh --demo >/dev/null

step "Building and installing dkms-sign-hook"
make build install >/dev/null
dsh=/usr/sbin/dkms-sign-hook
$dsh --version

conf=/etc/dkms-sign-hook/dkms-sign-hook.conf
if [ ! -e /etc/dkms-sign-hook/signing_key.pem ]; then
	step "Making a signing key (RSA-4096) in /etc/dkms-sign-hook"
	$dsh keygen --out /etc/dkms-sign-hook --cn "dkms-sign-hook demo key ($(hostname))" --write-config "$conf"
else
	step "Using the existing key in /etc/dkms-sign-hook"
fi

kver=$(basename "$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)" | sed 's/^linux-headers-//')
step "Building the demo DKMS package dshdemo/1.0 for kernel $kver with the hook enabled"
dkms remove dshdemo/1.0 --all >/dev/null 2>&1 || true
rm -rf /usr/src/dshdemo-1.0
cp -r contrib/demo/dshdemo /usr/src/dshdemo-1.0
dkms add dshdemo/1.0
$dsh enable dshdemo
dkms build dshdemo/1.0 -k "$kver"
dkms install dshdemo/1.0 -k "$kver"

step "What dkms-sign-hook says about it"
$dsh status || true
mod=$(ls /lib/modules/"$kver"/updates/dkms/dshdemo.ko* | head -n 1)
$dsh verify --cert /etc/dkms-sign-hook/signing_key.x509 "$mod"
$dsh info "$mod"
step "kmod's modinfo agrees"
modinfo -F signer "$mod"
modinfo -F sig_hashalgo "$mod"
cat <<MSG

Done: $mod is signed with your key.
Next: enrol the certificate so the kernel trusts it:
  mokutil --import /etc/dkms-sign-hook/signing_key.der   # then reboot and confirm in MokManager
Enable more packages with: dkms-sign-hook enable PKG...   (or --all)
Undo the demo: dkms remove dshdemo/1.0 --all; dkms-sign-hook disable dshdemo; rm -r /usr/src/dshdemo-1.0
MSG
