#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Firecracker for the emulated arm64 host (optional interop column, not in CI): a static
# aarch64 `firecracker` built from the source snapshots in ../shared/vendor as their
# README describes, packed as a gzip'd newc cpio holding /usr/bin/firecracker. About 5
# minutes on two cores; Documentation/interop.rst.
#
#   build-firecracker.sh        build if needed; prints the cpio's path on stdout
#
# Firecracker's code is unchanged. In a build folder under $RKVM_CACHE: its
# rust-toolchain.toml goes (its pinned rustup toolchain cannot be downloaded here; Debian's
# rustc has the aarch64 glibc std), the git dependency micro_http points at the unpacked
# snapshot through a [patch] entry, and cargo builds aarch64-unknown-linux-gnu with
# +crt-static. The glibc target has no seccomp policy, so the build embeds upstream's
# allow-all one, and the test kernel has no CONFIG_SECCOMP: it runs with --no-seccomp.
# Needs Debian's cmake (aws-lc-sys) and libseccomp-dev (the build-time seccomp compiler).
source "$(dirname "$0")/common.sh"

tarball= http=
for vendor in ${RKVM_VENDOR:-} "$RKVM_TOP/../shared/vendor" "$RKVM_TOP/../../shared/vendor"; do
	[ -f "$vendor/firecracker-v1.16.1.tar.xz" ] || continue
	tarball=$vendor/firecracker-v1.16.1.tar.xz http=$vendor/micro-http-876f3fe.tar.xz
	break
done
[ -n "$tarball" ] || die "no firecracker-v1.16.1.tar.xz in ../shared/vendor (set RKVM_VENDOR)"
for p in cmake libseccomp-dev; do
	dpkg -s "$p" >/dev/null 2>&1 || { log "installing $p"; apt-get install -y -q "$p" >/dev/null; }
done

key=$( { sha256sum "$tarball" "$http" | cut -d' ' -f1; /usr/bin/rustc --version; cat "${BASH_SOURCE[0]}"; } |
	sha256sum | cut -c1-12)
outdir=$RKVM_CACHE/firecracker/$key
cpio=$outdir/firecracker.cpio.gz
if [ -f "$cpio" ]; then
	echo "$cpio"
	exit 0
fi

log "building Firecracker 1.16.1 (static aarch64, about 5 minutes on 2 cores)"
start=$SECONDS
build=$RKVM_CACHE/firecracker/build
mkdir -p "$build"
rm -rf "$build/firecracker-v1.16.1" "$build/micro-http-876f3fe"
tar xJf "$tarball" -C "$build"
tar xJf "$http" -C "$build"
src=$build/firecracker-v1.16.1
rm -f "$src/rust-toolchain.toml"
cat >> "$src/.cargo/config.toml" <<EOF

[patch."https://github.com/firecracker-microvm/micro-http"]
micro_http = { path = "$build/micro-http-876f3fe" }

[target.aarch64-unknown-linux-gnu]
linker = "aarch64-linux-gnu-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
EOF
(cd "$src" && RUSTC=/usr/bin/rustc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	cargo build --release --target aarch64-unknown-linux-gnu -p firecracker) >"$build/build.log" 2>&1 ||
	{ tail -30 "$build/build.log" >&2; die "Firecracker build failed (log: $build/build.log)"; }
bin=$src/build/cargo_target/aarch64-unknown-linux-gnu/release/firecracker
file "$bin" | grep -q 'ARM aarch64.*statically linked' ||
	die "firecracker is not a static aarch64 binary: $(file -b "$bin")"
mkdir -p "$outdir"
cp "$bin" "$outdir/firecracker"
root=$(mktemp -d)
install -D -m 0755 "$bin" "$root/usr/bin/firecracker"
(cd "$root" && find . | sort | cpio -o -H newc --quiet --owner=0:0 | gzip -6) > "$cpio.tmp"
rm -rf "$root"
mv "$cpio.tmp" "$cpio"
log "Firecracker: $outdir/firecracker ($(du -k "$bin" | cut -f1) KiB) in $((SECONDS - start)) s"
echo "$cpio"
