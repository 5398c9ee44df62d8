// Package secureboot is the suite of the road most users walk: UEFI firmware
// with Secure Boot on and Microsoft's keys (OVMF), Debian's signed shim,
// Debian's signed GRUB and Debian's signed kernel, booted under QEMU, loading
// modules that the real dkms built and dkms-sign-hook signed, with the
// signing certificate enrolled as a Machine Owner Key (or not, or only in the
// firmware's db). The kernel's answers are the oracle; `dkms-sign-hook status`
// runs inside the booted system and must agree with them.
//
// Nothing is installed on the host to build the chain: the Debian packages
// are fetched with apt-get download into the test cache and unpacked there.
// README.md has the rows and what they proved.
package secureboot
