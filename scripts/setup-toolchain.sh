#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything rkvm builds and tests with (see Documentation/testing.rst):
# Debian packages, bindgen-cli from crates.io, and the Linux source from Debian.
# Idempotent: each step checks for its product first.
source "$(dirname "$0")/common.sh"

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

apt_packages=(
	clang-19 lld-19 llvm-19 libclang-19-dev        # LLVM kernel build + bindgen's libclang
	rustc-web rust-web-src                         # kernel-grade rustc with the core source
	rust-web-clippy                                # clippy-driver matching it (make clippy)
	flex bison bc libelf-dev libssl-dev cpio xz-utils kmod binutils
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross    # arm64 userspace linker and libc
	libstd-rust-web-dev:arm64                      # aarch64 std for /usr/bin/rustc
)

need_apt=0
for p in "${apt_packages[@]}" qemu-system-arm; do
	dpkg -s "$p" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
	log "installing Debian packages (bookworm + bookworm-backports for QEMU 10)"
	src=/etc/apt/sources.list.d/rkvm-backports.sources
	if [ ! -e "$src" ]; then
		$SUDO tee "$src" >/dev/null <<EOS
Types: deb
URIs: $RKVM_DEBIAN_MIRROR
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	fi
	dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
	mkdir -p "$RKVM_CACHE"
	apt_log=$RKVM_CACHE/apt.log
	{
		$SUDO apt-get update -q &&
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${apt_packages[@]}" &&
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			-t bookworm-backports qemu-system-arm
	} >"$apt_log" 2>&1 || { tail -30 "$apt_log"; die "apt-get failed (log: $apt_log)"; }
fi

if [ ! -x "$RKVM_BINDGEN" ]; then
	log "building bindgen-cli from crates.io (about 3 minutes)"
	cargo install --locked --quiet --root "$RKVM_TOOLS" bindgen-cli
fi

# Static arm64 busybox for the test initramfs.
bb=$RKVM_CACHE/busybox/bin/busybox
if [ ! -x "$bb" ]; then
	log "fetching arm64 busybox-static"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get -o APT::Sandbox::User=root download -q busybox-static:arm64 >/dev/null)
	mkdir -p "$RKVM_CACHE/busybox"
	dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
	mkdir -p "$(dirname "$bb")"
	cp "$tmp/x/bin/busybox" "$bb"
	rm -rf "$tmp"
fi

# Linux source from Debian's trixie-backports, fetched with a private apt state so the
# host's own package sources never see trixie.
ksrc=$(kernel_src_dir)
if [ ! -f "$ksrc/Makefile" ]; then
	log "fetching $RKVM_KSRC_PKG from Debian trixie-backports"
	apt_dir=$RKVM_CACHE/apt-trixie
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$RKVM_CACHE/src"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $RKVM_DEBIAN_MIRROR trixie-backports main" \
		> "$apt_dir/sources.list"
	aopts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
	       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
	       -o APT::Architecture=amd64 -o APT::Architectures=amd64)
	apt-get "${aopts[@]}" update -q >/dev/null
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get "${aopts[@]}" -o APT::Sandbox::User=root download -q "$RKVM_KSRC_PKG" >/dev/null)
	dpkg-deb --fsys-tarfile "$tmp"/"$RKVM_KSRC_PKG"_*.deb |
		tar -x -C "$tmp" --wildcards "./usr/src/$RKVM_KSRC_PKG.tar.xz"
	log "unpacking the kernel source"
	rm -rf "$ksrc.tmp" && mkdir -p "$ksrc.tmp"
	tar -xJf "$tmp/usr/src/$RKVM_KSRC_PKG.tar.xz" -C "$ksrc.tmp" --strip-components=1
	mv "$ksrc.tmp" "$ksrc"
	rm -rf "$tmp"
fi
# The arm64 QEMU 7.2 userspace for the emulated host (qemu_boot, `make run`).
"$RKVM_TOP/scripts/build-qemu-userspace.sh" >/dev/null

log "toolchain ready"
