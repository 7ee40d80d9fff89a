#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Cross-compile the aarch64 selftests (static binaries) with Debian's rustc, which carries
# the aarch64 std (the rustup toolchain first on PATH does not).
source "$(dirname "$0")/common.sh"
log "building the aarch64 selftests"
cd "$RKVM_TOP/selftests"
RUSTC=/usr/bin/rustc cargo build --release --quiet --locked
