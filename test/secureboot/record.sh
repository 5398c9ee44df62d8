#!/bin/sh
# record.sh: boot the Secure Boot chain again (TestSecureBoot) and refresh
# the recordings that pkg/kerneltrust's and pkg/status's tests replay,
# pkg/kerneltrust/testdata/secureboot-debian12 (its README says what they
# are). Run as root from anywhere, with what `make deps` installs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dst=$here/../../pkg/kerneltrust/testdata/secureboot-debian12
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
(cd "$here" && DKMS_SIGN_HOOK_SB_CONSOLE=$keep go test -count=1 -timeout 60m -run '^TestSecureBoot$' .)
for boot in mok nomok-db grub-dkms; do
	rm -rf "${dst:?}/$boot"
	mkdir -p "$dst/$boot"
	cp "$keep/$boot"/capture-*.txt "$keep/$boot"/status-*.txt "$keep/$boot/verdicts.txt" "$dst/$boot/"
done
cp "$keep/mok.crt" "$keep/ecdsa.crt" "$keep/db.crt" "$keep/dkms-mok.pub" "$dst/"
# The booted system's files (the initramfs had no private keys), without
# DKMS's build directories and logs.
rm -rf "${dst:?}/system"
cp -a "$keep/system" "$dst/system"
find "$dst/system/var-lib-dkms" -mindepth 3 -maxdepth 3 -name build -type d -exec rm -rf {} +
find "$dst/system/var-lib-dkms" -path '*/x86_64/log' -type d -exec rm -rf {} +
echo "recorded into $dst"
