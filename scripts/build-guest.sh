#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The Linux guest that QEMU boots inside the emulated host, packed as a cpio for the
# host's initramfs: /guest/Image (the project's test kernel, which has virtio-mmio,
# virtio-blk and the PL011 console) and /guest/initramfs.cpio.gz (static busybox and
# selftests/guest/init.sh). See Documentation/qemu.rst.
# $1: output file (a gzip'd newc cpio).
source "$(dirname "$0")/common.sh"
out=${1:?output file}
image=${RKVM_GUEST_IMAGE:-$(kernel_build_dir test)/arch/arm64/boot/Image}
[ -f "$image" ] || die "no guest kernel at $image (run 'make test-kernel')"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

g=$tmp/guest-root
mkdir -p "$g"/{bin,dev,proc,sys,tmp}
cp "$RKVM_CACHE/busybox/bin/busybox" "$g/bin/busybox"
install -m 0755 "$RKVM_TOP/selftests/guest/init.sh" "$g/init"
h=$tmp/host-root
mkdir -p "$h/guest"
(cd "$g" && find . | cpio -o -H newc --quiet --owner=0:0 | gzip -6) > "$h/guest/initramfs.cpio.gz"
cp "$image" "$h/guest/Image"
(cd "$h" && find . | cpio -o -H newc --quiet --owner=0:0 | gzip -1) > "$out"
