#!/bin/sh
# Installs, from Debian 12's archive, every package the build and the tests use:
# the real components the tests compare against (sign-file, dkms, kmod, openssl,
# a kernel source tree, QEMU, SoftHSM) and the tools that build the kernel.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
	build-essential bc bison flex cpio dwarves libelf-dev libssl-dev python3 rsync \
	dkms kmod linux-kbuild-6.1 linux-headers-amd64 linux-source-6.12 \
	qemu-system-x86 busybox-static ovmf mtools dosfstools fdisk python3-cryptography \
	softhsm2 opensc openssl \
	p11-kit p11-kit-modules openssh-server openssh-client systemd iproute2 util-linux \
	xz-utils zstd gzip keyutils mokutil time \
	debhelper dh-golang lintian \
	debootstrap debian-archive-keyring
