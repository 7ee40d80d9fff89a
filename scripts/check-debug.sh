#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The selftests on the debug kernel (lockdep, atomic-sleep checks, list debugging, KASAN,
# kmemleak), in both host modes. rkvm.ko is built against that kernel from a copy of the
# sources in the output folder, so the tree's own build (for the test kernel) is untouched.
source "$(dirname "$0")/common.sh"

kdir=$("$RKVM_TOP/scripts/build-kernel.sh" debug --print)
outdir=${RKVM_OUT:-$RKVM_TOP/out}
src=$outdir/debug-module
mkdir -p "$src"
# Sources only: the copy keeps its own Kbuild products between runs.
(cd "$RKVM_TOP" && tar -cf - --exclude='*.o' --exclude='.*.cmd' --exclude='*.ko' \
	--exclude='*.mod*' --exclude='.*.d' --exclude=bindings_generated.rs \
	Kbuild Makefile rust arch include scripts/check-hyp-object.sh) | tar -xf - -C "$src"
log "building rkvm.ko against the debug kernel"
make -s -C "$kdir" M="$src" "${RKVM_KMAKE_ARGS[@]}" modules
RKVM_KERNEL=debug RKVM_MODULE=$src/rkvm.ko "$RKVM_TOP/scripts/run-hosts.sh" check vhe nvhe
