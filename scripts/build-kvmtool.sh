#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# kvmtool for the emulated arm64 host: a static aarch64 `lkvm` built from the source
# snapshot in ../shared/vendor (see its README), packed as a gzip'd newc cpio holding
# /usr/bin/lkvm that run-hosts.sh appends to the host's initramfs. See
# Documentation/interop.rst.
#
#   build-kvmtool.sh            build if needed; prints the cpio's path on stdout
#
# The source is unpacked into a build folder under $RKVM_CACHE and never enters the repo.
# libfdt is Debian's libfdt-dev:arm64 (`apt-get download`, unpacked with dpkg-deb). The
# result is cached under $RKVM_CACHE/kvmtool/<key>/ (lkvm-static and kvmtool.cpio.gz), the
# key being the hash of the snapshot, the libfdt-dev version and this script.
#
# kvmtool is built unmodified: `lkvm run` needs AF_UNIX for its control socket under
# $HOME/.lkvm, and the test kernel has CONFIG_UNIX (kernel/config-test.fragment), so no
# copy of kvm-ipc.c needs patching.
source "$(dirname "$0")/common.sh"

# The snapshots sit in ../shared/vendor beside the clone (or beside its worktree folder);
# RKVM_VENDOR names another place.
tarball=
for vendor in ${RKVM_VENDOR:-} "$RKVM_TOP/../shared/vendor" "$RKVM_TOP/../../shared/vendor"; do
	[ -f "$vendor/kvmtool-b48735e5.tar.xz" ] && { tarball=$vendor/kvmtool-b48735e5.tar.xz; break; }
done
sha=43805e07097d31d51983380663a633513f54158adb4be40202633944be30df11
[ -n "$tarball" ] || die "no kvmtool-b48735e5.tar.xz in ../shared/vendor (set RKVM_VENDOR)"

# The arm64 foreign architecture and the cross compiler come with setup-toolchain.sh.
dpkg --print-foreign-architectures | grep -qx arm64 || die "dpkg has no arm64 architecture (run 'make toolchain')"
command -v aarch64-linux-gnu-gcc >/dev/null || die "no aarch64-linux-gnu-gcc (run 'make toolchain')"
fdt_ver=$(apt-cache policy libfdt-dev:arm64 | sed -n 's/^ *Candidate: //p')
[ -n "$fdt_ver" ] && [ "$fdt_ver" != "(none)" ] || die "apt offers no libfdt-dev:arm64"

key=$( { echo "$sha $fdt_ver"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
outdir=$RKVM_CACHE/kvmtool/$key
cpio=$outdir/kvmtool.cpio.gz
if [ -f "$cpio" ]; then
	echo "$cpio"
	exit 0
fi

echo "$sha  $tarball" | sha256sum -c --quiet - || die "$tarball: checksum mismatch"
log "building kvmtool (static aarch64 lkvm, libfdt-dev $fdt_ver)"
start=$SECONDS
build=$RKVM_CACHE/kvmtool/build-$key
rm -rf "$build"
mkdir -p "$build/fdt-deb"
(cd "$build/fdt-deb" && apt-get download -q "libfdt-dev:arm64=$fdt_ver") >"$build/fdt.log" 2>&1 ||
	{ tail -5 "$build/fdt.log" >&2; die "apt-get download libfdt-dev:arm64 failed"; }
dpkg-deb -x "$build"/fdt-deb/libfdt-dev_*.deb "$build/fdt-root"
# LIBFDT_DIR: one folder with libfdt.a, fdt.h, libfdt.h and libfdt_env.h.
fdt=$build/libfdt
mkdir -p "$fdt"
cp "$build/fdt-root/usr/lib/aarch64-linux-gnu/libfdt.a" "$build"/fdt-root/usr/include/{fdt.h,libfdt.h,libfdt_env.h} "$fdt/"

tar xJf "$tarball" -C "$build"
src=$build/kvmtool-b48735e5
make -C "$src" -j"$(($(nproc) + 1))" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- \
	LIBFDT_DIR="$fdt" lkvm-static >"$build/build.log" 2>&1 ||
	{ tail -30 "$build/build.log" >&2; die "kvmtool build failed (log: $build/build.log)"; }
file "$src/lkvm-static" | grep -q 'ARM aarch64.*statically linked' ||
	die "lkvm-static is not a static aarch64 binary: $(file -b "$src/lkvm-static")"

mkdir -p "$outdir"
cp "$src/lkvm-static" "$outdir/lkvm-static"
root=$build/root
install -D -m 0755 "$outdir/lkvm-static" "$root/usr/bin/lkvm"
(cd "$root" && find . | sort | cpio -o -H newc --quiet --owner=0:0 | gzip -6) > "$cpio.tmp"
mv "$cpio.tmp" "$cpio"
rm -rf "$build"
log "kvmtool: $outdir/lkvm-static ($(du -k "$outdir/lkvm-static" | cut -f1) KiB) in $((SECONDS - start)) s"
echo "$cpio"
