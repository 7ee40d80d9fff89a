# SPDX-License-Identifier: GPL-2.0
# Shared settings for rkvm's build and test scripts. Sourced, not executed.
#
# Everything built outside the repo lives under $RKVM_CACHE (default ~/.cache/rkvm),
# keyed so that a changed kernel config or version never reuses a stale build.

set -euo pipefail

RKVM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RKVM_CACHE=${RKVM_CACHE:-$HOME/.cache/rkvm}
RKVM_KVER=${RKVM_KVER:-7.3}
# The Debian package carrying the kernel source; pinned by name, not point release.
RKVM_KSRC_PKG=linux-source-$RKVM_KVER
RKVM_DEBIAN_MIRROR=${RKVM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

LLVM_SUFFIX=-19
export LIBCLANG_PATH=/usr/lib/llvm${LLVM_SUFFIX}/lib
RKVM_TOOLS=$RKVM_CACHE/tools
RKVM_BINDGEN=$RKVM_TOOLS/bin/bindgen

# The rustup toolchain first on PATH lacks rust-src; the kernel needs Debian's rustc.
RKVM_KMAKE_ARGS=(ARCH=arm64 LLVM=$LLVM_SUFFIX RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
                 BINDGEN=$RKVM_BINDGEN)

log() { printf '\033[1m[rkvm]\033[0m %s\n' "$*" >&2; }
die() { printf '[rkvm] error: %s\n' "$*" >&2; exit 1; }

# Kernel config identity: version plus the hash of each fragment that went into it.
# $1: config flavour (fragment name under kernel/, e.g. "test").
kernel_build_dir() {
	local flavour=${1:-test} hash
	hash=$(cat "$RKVM_TOP/kernel/config-$flavour.fragment" | sha256sum | cut -c1-12)
	echo "$RKVM_CACHE/kernel/linux-$RKVM_KVER-$flavour-$hash"
}
kernel_src_dir() { echo "$RKVM_CACHE/src/linux-source-$RKVM_KVER"; }
