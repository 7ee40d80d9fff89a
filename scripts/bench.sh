#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: world-switch costs of rkvm and in-kernel KVM, side by side, in one run.
#
# Boots the emulated arm64 host under `-icount shift=0` (virtual time = 1 ns per executed
# instruction) four ways: {rkvm, KVM} x {VHE, nVHE}, each twice, runs the same benchmark
# VMM and guest (selftests/src/bin/bench.rs), and writes Documentation/bench.csv, a table
# on the terminal and Documentation/bench.png.
#   RKVM_BENCH_ITERS    iterations per operation (default 2000: icount makes runs repeat,
#                       so more buys no precision)
#   RKVM_BENCH_CONFIGS  configurations to boot (default "rkvm-vhe kvm-vhe rkvm-nvhe kvm-nvhe")
#   RKVM_BENCH_REPS     runs per configuration (default 2)
#   RKVM_BENCH_REPORT   folder for bench.csv/bench.png (default Documentation/)
source "$(dirname "$0")/common.sh"

iters=${RKVM_BENCH_ITERS:-2000}
image=$(kernel_build_dir test)/arch/arm64/boot/Image
outdir=${RKVM_OUT:-$RKVM_TOP/out}; logdir=$outdir/logs
mkdir -p "$logdir"
base=$outdir/initramfs-bench-base.cpio.gz
"$RKVM_TOP/scripts/mkinitramfs.sh" "$base"
# The macro row: QEMU and its Linux guest ride along, as in run-hosts.sh.
qemu_cpio=$("$RKVM_TOP/scripts/build-qemu-userspace.sh")
guest_cpio=$outdir/guest.cpio.gz
"$RKVM_TOP/scripts/build-guest.sh" "$guest_cpio"
initrd=$outdir/initramfs-bench.cpio.gz
cat "$base" "$qemu_cpio" "$guest_cpio" > "$initrd"

results=()
for config in ${RKVM_BENCH_CONFIGS:-rkvm-vhe kvm-vhe rkvm-nvhe kvm-nvhe}; do
	case $config in
	rkvm-vhe) append="kvm-arm.mode=none rkvmtest.bench=rkvm rkvmtest.backend=VHE" ;;
	rkvm-nvhe) append="kvm-arm.mode=none rkvmtest.bench=rkvm rkvmtest.backend=nVHE" ;;
	kvm-*) append="rkvmtest.bench=kvm rkvmtest.backend=refused-kvm" ;;
	esac
	case $config in *-nvhe) append="$append id_aa64mmfr1.vh=0" ;; esac
	for rep in $(seq "${RKVM_BENCH_REPS:-2}"); do
		log "benchmark: $config, run $rep ($iters iterations per operation)"
		console=$logdir/bench-$config-$rep.log
		timeout --foreground -k 10 1800 qemu-system-aarch64 \
			-M virt,virtualization=on,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 2G \
			-icount shift=0 -nographic -no-reboot -nic none \
			-kernel "$image" -initrd "$initrd" \
			-append "console=ttyAMA0 panic=-1 rkvmtest.action=bench rkvmtest.iters=$iters $append" \
			</dev/null 2>&1 | tr -d '\r' >"$console" || true
		results+=("$config:$rep:$console")
	done
done
report=${RKVM_BENCH_REPORT:-$RKVM_TOP/Documentation}
mkdir -p "$report"
python3 "$RKVM_TOP/scripts/bench-report.py" "$report" "${results[@]}"
