#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Pack the emulated host's initramfs: static busybox, /init, rkvm.ko and the selftests.
# RKVM_EXTRA_DIR, if set, is copied to /kvm-selftests (used by `make conformance`).
# $1: output file (a gzip'd newc cpio).
source "$(dirname "$0")/common.sh"
out=${1:?output file}
bins=$RKVM_TOP/selftests/target/aarch64-unknown-linux-gnu/release
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules,selftests}
cp "$RKVM_CACHE/busybox/bin/busybox" "$root/bin/busybox"
install -m 0755 "$RKVM_TOP/selftests/init.sh" "$root/init"
cp "${RKVM_MODULE:-$RKVM_TOP/rkvm.ko}" "$root/lib/modules/rkvm.ko"
for f in "$bins"/*; do
	# The binaries are the extension-less executables cargo leaves at the top level.
	[ -f "$f" ] && [ -x "$f" ] && [[ "$f" != *.* ]] && cp "$f" "$root/selftests/"
done
[ -z "${RKVM_EXTRA_DIR:-}" ] || cp -a "$RKVM_EXTRA_DIR" "$root/kvm-selftests"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
