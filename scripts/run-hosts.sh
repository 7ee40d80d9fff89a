#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the emulated arm64 host(s) under QEMU with rkvm and the selftests in the initramfs.
#
#   run-hosts.sh check [MODE...]   run the selftests on each host mode (default: all) and
#                                  print "N passed, M failed[, K skipped]"; non-zero exit
#                                  on any failure, console warning, crash or hang
#   run-hosts.sh run               boot the VHE host and run the demo, console on stdout
#
# Host modes:
#   vhe        kernel at EL2 (VHE), EL2 free for rkvm (kvm-arm.mode=none)
#   nvhe       kernel at EL1 with the hyp stub at EL2 (id_aa64mmfr1.vh=0)
#   nvhe-a72   the same on a Cortex-A72, an ARMv8.0 core without VHE
#   vhe-kvm    the in-kernel KVM initialised (no kvm-arm.mode=none): rkvm must refuse
#   nvhe-kvm   the same on an nVHE host, where KVM's own EL2 code answers HVCs
#   no-el2     a machine without EL2 (virtualization=off): rkvm must refuse
# Console logs go to out/logs/ (or $RKVM_OUT/logs). RKVM_PROGRAMS=a,b limits the selftest
# programs run on the hosts that load rkvm.
source "$(dirname "$0")/common.sh"

action=${1:-check}; shift || true
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=(vhe nvhe nvhe-a72 vhe-kvm nvhe-kvm no-el2)
RKVM_BOOT_TIMEOUT=${RKVM_BOOT_TIMEOUT:-600}

# RKVM_KERNEL=debug boots the debug kernel (kernel/config-debug.fragment) with the rkvm.ko
# built against it (RKVM_MODULE); logs then go to logs/debug-*.
flavour=${RKVM_KERNEL:-test}
image=$(kernel_build_dir "$flavour")/arch/arm64/boot/Image
module=${RKVM_MODULE:-$RKVM_TOP/rkvm.ko}
[ -f "$image" ] || die "no kernel image at $image (run 'make test-kernel')"
[ -f "$module" ] || die "no rkvm.ko at $module (run 'make')"
outdir=${RKVM_OUT:-$RKVM_TOP/out}; logdir=$outdir/logs
mkdir -p "$logdir"
initrd=$outdir/initramfs-$flavour.cpio.gz
RKVM_MODULE=$module "$RKVM_TOP/scripts/mkinitramfs.sh" "$initrd"
tag=; [ "$flavour" = test ] || tag=$flavour-

# $1: mode. The pieces of the QEMU command line that differ per mode.
mode_machine() {
	case "$1" in
	no-el2) echo "virt,virtualization=off,gic-version=3" ;;
	*) echo "virt,virtualization=on,gic-version=3" ;;
	esac
}
mode_cpu() {
	case "$1" in
	nvhe-a72) echo "cortex-a72" ;;
	*) echo "max,sve=off,sme=off" ;;
	esac
}
mode_append() {
	local refused="rkvmtest.programs=module_load"
	# RKVM_PROGRAMS=a,b runs only those selftest programs (module_load first loads rkvm).
	local only=${RKVM_PROGRAMS:+rkvmtest.programs=module_load,$RKVM_PROGRAMS}
	case "$1" in
	vhe) echo "kvm-arm.mode=none rkvmtest.backend=VHE $only" ;;
	nvhe) echo "kvm-arm.mode=none id_aa64mmfr1.vh=0 rkvmtest.backend=nVHE $only" ;;
	nvhe-a72) echo "kvm-arm.mode=none rkvmtest.backend=nVHE $only" ;;
	vhe-kvm) echo "rkvmtest.backend=refused-kvm $refused" ;;
	nvhe-kvm) echo "id_aa64mmfr1.vh=0 rkvmtest.backend=refused-kvm $refused" ;;
	no-el2) echo "kvm-arm.mode=none rkvmtest.backend=refused-noel2 $refused" ;;
	*) die "unknown host mode $1" ;;
	esac
}

# $1: mode, $2: action, $3: console log. Boots one host; QEMU's status is returned.
boot() {
	local mode=$1 act=$2 console=$3
	timeout --foreground -k 10 "$RKVM_BOOT_TIMEOUT" \
		qemu-system-aarch64 -M "$(mode_machine "$mode")" \
		-cpu "$(mode_cpu "$mode")" -smp 2 -m 2G -nographic -no-reboot -nic none \
		-kernel "$image" -initrd "$initrd" \
		-append "console=ttyAMA0 panic=-1 rkvmtest.action=$act $(mode_append "$mode")" \
		</dev/null 2>&1 | tr -d '\r' | tee "$console" | { if [ "$act" = run ]; then cat; else cat >/dev/null; fi; }
	return "${PIPESTATUS[0]}"
}

case "$action" in
run)
	log "booting the emulated VHE host with rkvm (console follows)"
	boot vhe run "$logdir/run-vhe.log" || die "QEMU failed (log: $logdir/run-vhe.log)"
	grep -q '^rkvm-init: done' "$logdir/run-vhe.log" || die "the host did not finish"
	;;
check)
	summaries=()
	for mode in "${modes[@]}"; do
		log "booting the emulated $mode host and running the selftests"
		console=$logdir/check-$tag$mode.log
		start=$SECONDS
		status=0; boot "$mode" check "$console" || status=$?
		summaries+=("$tag$mode:$status:$((SECONDS - start)):$console")
	done
	# `make check` judges every host of every kernel together at the end.
	printf '%s\n' "${summaries[@]}" >>"$outdir/check-summaries"
	python3 "$RKVM_TOP/scripts/ktap-summary.py" "${summaries[@]}"
	;;
*) die "unknown action $action" ;;
esac
