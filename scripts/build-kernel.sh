#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Configure and build the arm64 test-host kernel: allnoconfig + kernel/config-<flavour>.fragment
# + olddefconfig, built out of tree into the cache folder keyed by version and fragment hash.
# Prints nothing on stdout except, with --print, the build directory.
source "$(dirname "$0")/common.sh"

flavour=test
print=0
for a in "$@"; do
	case "$a" in
	--print) print=1 ;;
	--dir) kernel_build_dir "$flavour"; exit 0 ;;
	*) flavour=$a ;;
	esac
done

ksrc=$(kernel_src_dir)
kbuild=$(kernel_build_dir "$flavour")
fragment=$RKVM_TOP/kernel/config-$flavour.fragment
[ -f "$fragment" ] || die "no config fragment $fragment"

if [ ! -f "$kbuild/.rkvm-built" ]; then
	[ -f "$ksrc/Makefile" ] || "$RKVM_TOP/scripts/setup-toolchain.sh"
	log "building Linux $RKVM_KVER ($flavour config) in $kbuild"
	log "  (about 7 minutes on 2 cores; later runs reuse it)"
	mkdir -p "$kbuild"
	kmake=(make -s -C "$ksrc" O="$kbuild" "${RKVM_KMAKE_ARGS[@]}")
	"${kmake[@]}" allnoconfig >/dev/null
	"$ksrc/scripts/kconfig/merge_config.sh" -m -O "$kbuild" "$kbuild/.config" "$fragment" >/dev/null
	"${kmake[@]}" olddefconfig >/dev/null
	# Every option the fragment asks for must survive olddefconfig (a missing dependency
	# silently drops it otherwise: CONFIG_RUST disappears when the toolchain is unusable).
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		grep -qx -- "$line" "$kbuild/.config" ||
			die "kernel config lost '$line' (see 'make -C $ksrc O=$kbuild ARCH=arm64 LLVM=$LLVM_SUFFIX rustavailable')"
	done < "$fragment"
	start=$SECONDS
	(while sleep 60; do log "  kernel build running, $((SECONDS - start)) s"; done) &
	ticker=$!
	status=0
	"${kmake[@]}" -j"$(($(nproc) + 1))" Image modules >"$kbuild/build.log" 2>&1 || status=$?
	kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
	[ "$status" = 0 ] ||
		{ tail -40 "$kbuild/build.log"; die "kernel build failed (log: $kbuild/build.log)"; }
	log "kernel built in $((SECONDS - start)) s"
	touch "$kbuild/.rkvm-built"
fi
[ "$print" = 1 ] && echo "$kbuild"
exit 0
