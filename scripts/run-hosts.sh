#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the emulated arm64 host(s) under QEMU with rkvm and the selftests in the initramfs.
#
#   run-hosts.sh check [MODE...]   run the selftests on each host mode (default: all) and
#                                  print "N passed, M failed[, K skipped]"; non-zero exit
#                                  on any failure, console warning, crash or hang
#   run-hosts.sh run [MODE]        boot one host (default vhe) and boot the QEMU Linux
#                                  guest on its hypervisor (rkvm; in-kernel KVM on the
#                                  *-kvm modes), console on stdout; on rkvm without a vGIC
#                                  yet, the demo VMM instead (said so on the console)
#
# Host modes:
#   vhe        kernel at EL2 (VHE), EL2 free for rkvm (kvm-arm.mode=none)
#   nvhe       kernel at EL1 with the hyp stub at EL2 (id_aa64mmfr1.vh=0)
#   nvhe-a72   the same on a Cortex-A72, an ARMv8.0 core without VHE
#   vhe-kvm    the in-kernel KVM initialised (no kvm-arm.mode=none): rkvm must refuse;
#              the QEMU guest boots on the in-kernel KVM (the baseline of qemu_boot)
#   nvhe-kvm   the same on an nVHE host, where KVM's own EL2 code answers HVCs
#   nvhe-a72-kvm  the same on the Cortex-A72 (not in the default list; `make interop`)
#   no-el2     a machine without EL2 (virtualization=off): rkvm must refuse
# Console logs go to out/logs/ (or $RKVM_OUT/logs). RKVM_PROGRAMS=a,b limits the selftest
# programs run on the hosts that load rkvm; RKVM_APPEND adds words to the host's kernel
# command line (e.g. rkvmtest.qemu_force=1). RKVM_QEMU_STRESS=<s> sets the length of
# qemu_boot's 4-vCPU guest load (default 60 on the test kernel, 0 on the debug kernel).
# RKVM_KVM_PROGRAMS (default qemu_boot) is what the *-kvm hosts run after module_load,
# e.g. "interop" (the client matrix of `make interop`, on the in-kernel KVM).
# RKVM_RUN_QEMU=10 makes `run` boot the guest with QEMU 10's default machine (7.2: qemu_boot).
# RKVM_CHECK_INTEROP=<clients> (e.g. qemu-10,kvmtool-its,kvmtool-gicv3) adds the interop
# selftest with those clients to `check` on every host mode of the test kernel.
# RKVM_INTEROP_FIRECRACKER=1 adds Firecracker to the interop hosts (scripts/build-firecracker.sh).
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
# QEMU and its guest (qemu_boot, `make run`) ride along as appended archives, on the
# hosts that run qemu_boot (unpacking them costs a host boot 2-4 s).
qemu_cpio=$("$RKVM_TOP/scripts/build-qemu-userspace.sh")
guest_cpio=$outdir/guest.cpio.gz
"$RKVM_TOP/scripts/build-guest.sh" "$guest_cpio"
initrd_qemu=$outdir/initramfs-$flavour-qemu.cpio.gz
cat "$initrd" "$qemu_cpio" "$guest_cpio" > "$initrd_qemu"
# The interop clients (QEMU 10 and kvmtool beside 7.2) only where a host runs them.
check_interop=; [ "$flavour" != test ] || check_interop=${RKVM_CHECK_INTEROP:-}
kvm_programs=${RKVM_KVM_PROGRAMS:-qemu_boot${check_interop:+,interop}}
run_qemu=${RKVM_RUN_QEMU:-7.2}
initrd_interop=$outdir/initramfs-$flavour-interop.cpio.gz
if [[ ",${RKVM_PROGRAMS:-},$kvm_programs," == *,interop,* ]] ||
   { [ "$action" = run ] && [ "$run_qemu" = 10 ]; }; then
	qemu10_cpio=$("$RKVM_TOP/scripts/build-qemu-userspace.sh" 10)
	kvmtool_cpio=$("$RKVM_TOP/scripts/build-kvmtool.sh")
	# Firecracker (about 5 minutes to build) only when asked for: not in CI.
	fc_cpio=
	[ "${RKVM_INTEROP_FIRECRACKER:-0}" != 1 ] || fc_cpio=$("$RKVM_TOP/scripts/build-firecracker.sh")
	cat "$initrd" "$qemu_cpio" "$qemu10_cpio" "$kvmtool_cpio" $fc_cpio "$guest_cpio" > "$initrd_interop"
fi
mode_initrd() {
	local programs=${RKVM_PROGRAMS-qemu_boot${check_interop:+,interop}}
	case "$1" in *-kvm) programs=$kvm_programs ;; esac
	case "$1,$programs," in
	no-el2,*) echo "$initrd" ;;
	*interop,*) echo "$initrd_interop" ;;
	*-kvm,* | *qemu_boot*) echo "$initrd_qemu" ;;
	*) echo "$initrd" ;;
	esac
}
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
	nvhe-a72 | nvhe-a72-kvm) echo "cortex-a72" ;;
	*) echo "max,sve=off,sme=off" ;;
	esac
}
mode_append() {
	local refused="rkvmtest.programs=module_load"
	# On the in-kernel KVM hosts the QEMU guest runs on KVM: the baseline for rkvm.
	local kvm="rkvmtest.programs=module_load,$kvm_programs"
	# RKVM_PROGRAMS=a,b runs only those selftest programs (module_load first loads rkvm).
	local only=${RKVM_PROGRAMS:+rkvmtest.programs=module_load,$RKVM_PROGRAMS}
	# RKVM_CHECK_INTEROP: the interop clients after the default programs.
	[ -n "$only" ] || [ -z "$check_interop" ] ||
		only="rkvmtest.more_programs=interop rkvmtest.interop=$check_interop"
	[ -z "$check_interop" ] || kvm="$kvm rkvmtest.interop=$check_interop"
	case "$1" in
	vhe) echo "kvm-arm.mode=none rkvmtest.backend=VHE $only" ;;
	nvhe) echo "kvm-arm.mode=none id_aa64mmfr1.vh=0 rkvmtest.backend=nVHE $only" ;;
	nvhe-a72) echo "kvm-arm.mode=none rkvmtest.backend=nVHE $only" ;;
	vhe-kvm) echo "rkvmtest.backend=refused-kvm $kvm" ;;
	nvhe-kvm) echo "id_aa64mmfr1.vh=0 rkvmtest.backend=refused-kvm $kvm" ;;
	nvhe-a72-kvm) echo "rkvmtest.backend=refused-kvm $kvm" ;;
	no-el2) echo "kvm-arm.mode=none rkvmtest.backend=refused-noel2 $refused" ;;
	*) die "unknown host mode $1" ;;
	esac
}

# $1: mode, $2: action, $3: console log. Boots one host; QEMU's status is returned.
boot() {
	local mode=$1 act=$2 console=$3 rd=$initrd_qemu
	[ "$act" != run ] || [ "$run_qemu" != 10 ] || rd=$initrd_interop
	[ "$act" = run ] || rd=$(mode_initrd "$mode")
	timeout --foreground -k 10 "$RKVM_BOOT_TIMEOUT" \
		qemu-system-aarch64 -M "$(mode_machine "$mode")" \
		-cpu "$(mode_cpu "$mode")" -smp 2 -m 2G -nographic -no-reboot -nic none \
		-kernel "$image" -initrd "$rd" \
		-append "console=ttyAMA0 panic=-1 rkvmtest.action=$act rkvmtest.run_qemu=$run_qemu $(mode_append "$mode") $stress ${RKVM_APPEND:-}" \
		</dev/null 2>&1 | python3 -u "$RKVM_TOP/scripts/qemu-timing.py" stamp "$console.timing" |
		tr -d '\r' | tee "$console" | { if [ "$act" = run ]; then cat; else cat >/dev/null; fi; }
	local status=${PIPESTATUS[0]}
	# The QEMU guest's boot times, wall (this machine) and virtual (the emulated host's).
	python3 "$RKVM_TOP/scripts/qemu-timing.py" report "$tag$mode" "$console.timing"
	return "$status"
}
# qemu_boot's 4-vCPU boot with a 60-second guest load runs on the test kernel's hosts;
# RKVM_QEMU_STRESS=<s> sets the length, 0 leaves it out.
qstress=${RKVM_QEMU_STRESS-$([ "$flavour" = test ] && echo 60 || echo 0)}
stress=; [ "$qstress" = 0 ] || stress=rkvmtest.qemu_stress=$qstress

case "$action" in
run)
	mode=${modes[0]}  # vhe unless named
	log "booting the emulated $mode host; QEMU then boots a Linux guest on it (console follows)"
	boot "$mode" run "$logdir/run-$mode.log" || die "QEMU failed (log: $logdir/run-$mode.log)"
	grep -q '^rkvm-init: done' "$logdir/run-$mode.log" || die "the host did not finish"
	if grep -q '^qemu_boot: FAILED\|^interop: .*FAILED' "$logdir/run-$mode.log"; then die "the QEMU guest failed"; fi
	if grep -q '^rkvm-init: QEMU cannot boot' "$logdir/run-$mode.log"; then
		log "no Linux guest on rkvm yet: $(sed -n 's/^qemu_boot: //p' "$logdir/run-$mode.log" | head -1);"
		log "the demo VMM ran instead. 'make run-kvm' shows the same QEMU guest on the in-kernel KVM."
	fi
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
