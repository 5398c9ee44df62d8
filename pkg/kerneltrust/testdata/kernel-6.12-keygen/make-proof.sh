#!/bin/sh
# How proc-keys.txt was made (not run by the tests; needs test/kernel's
# cached 6.12 tree and about 2 minutes). Usage: make-proof.sh DSH_BINARY
set -eu
dsh=$1 w=/tmp/kgproof cache=/var/cache/dkms-sign-hook-test/current
rm -rf $w && mkdir -p $w/mod $w/ir/bin $w/ir/proc $w/ir/sys $w/ir/m && cd $w
$dsh keygen --cn 'keygen proof RSA' --out rsa >/dev/null
$dsh keygen --type ecdsa --cn 'keygen proof P-384' --out ec >/dev/null
$dsh keygen --bits 2048 --cn untrusted --out untr >/dev/null
cat rsa/signing_key.x509 ec/signing_key.x509 >trusted.pem
cp -a $cache/src src
sed -i "s|^CONFIG_SYSTEM_TRUSTED_KEYS=.*|CONFIG_SYSTEM_TRUSTED_KEYS=\"$w/trusted.pem\"|" src/.config
make -C src olddefconfig >/dev/null && make -C src -j"$(nproc)" bzImage >/dev/null
printf '#include <linux/module.h>\nstatic int __init h(void) { return 0; }\nstatic void __exit e(void) { }\nmodule_init(h);\nmodule_exit(e);\nMODULE_LICENSE("GPL");\n' >mod/hello.c
echo 'obj-m := hello.o' >mod/Makefile
make -C src M=$w/mod modules >/dev/null
for v in rsa-sha256 rsa-sha512 rsa-skid ec-sha384 ec-sha512 untrusted tampered unsigned; do cp mod/hello.ko ir/m/$v.ko; done
$dsh sign --key rsa/signing_key.pem --cert rsa/signing_key.x509 --hash sha256 ir/m/rsa-sha256.ko
$dsh sign --key rsa/signing_key.pem --cert rsa/signing_key.der --hash sha512 ir/m/rsa-sha512.ko ir/m/tampered.ko
$dsh sign --key rsa/signing_key.pem --cert rsa/signing_key.x509 --hash sha512 --keyid ir/m/rsa-skid.ko
$dsh sign --key ec/signing_key.pem --cert ec/signing_key.x509 --hash sha384 ir/m/ec-sha384.ko
$dsh sign --key ec/signing_key.pem --cert ec/signing_key.x509 --hash sha512 ir/m/ec-sha512.ko
$dsh sign --key untr/signing_key.pem --cert untr/signing_key.x509 --hash sha512 ir/m/untrusted.ko
printf '\001' | dd of=ir/m/tampered.ko bs=1 seek=200 conv=notrunc 2>/dev/null
cp /bin/busybox ir/bin/ && ln -s busybox ir/bin/sh
cat >ir/init <<'INIT'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "sig_enforce=$(/bin/busybox cat /sys/module/module/parameters/sig_enforce)"
for m in /m/*.ko; do
  if out=$(/bin/busybox insmod $m 2>&1); then echo "RESULT $m LOADED"; /bin/busybox rmmod hello; else echo "RESULT $m REFUSED: $out"; fi
done
/bin/busybox grep asymmetri /proc/keys
/bin/busybox reboot -f
INIT
chmod +x ir/init
(cd ir && find . | cpio -o -H newc 2>/dev/null | gzip >../ir.cpio.gz)
qemu-system-x86_64 -m 256 -nographic -no-reboot -kernel src/arch/x86/boot/bzImage -initrd ir.cpio.gz \
	-append "console=ttyS0 panic=-1 quiet" | tr -d '\r' | grep -E 'sig_enforce|RESULT|asymmetri'
