#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the emulated arm64 host: mount the basics, run what the kernel command line
# asks for (rkvmtest.action=check|run|bench|conformance), print an end marker, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp

action=check
programs=module_load,system_ioctl,vm_run,lazy_switch,vm_errors,dirty_log,mmu_notifier,vm_robustness,bench_smoke,hostile_guest,host_traps,ptrauth,isolation,ioctl_fuzz,vgic,timer_irq,halt_poll,smp_power,pv_time,smccc_filter,vcpu_events,ioeventfd,binary_stats,coalesced_mmio,cpu_hotplug,lost_el2,vgic_delivery,its,resource_limits,qemu_boot
for word in $(cat /proc/cmdline); do
	case "$word" in
	rkvmtest.action=*) action=${word#*=} ;;
	rkvmtest.programs=*) programs=${word#*=} ;;
	rkvmtest.more_programs=*) more_programs=${word#*=} ;;
	rkvmtest.bench=*) bench=${word#*=} ;;
	rkvmtest.iters=*) iters=${word#*=} ;;
	rkvmtest.target=*) target=${word#*=} ;;
	rkvmtest.timeout=*) ctimeout=${word#*=} ;;
	rkvmtest.tests=*) ctests=${word#*=} ;;
	rkvmtest.backend=*) backend=${word#*=} ;;
	rkvmtest.run_qemu=*) run_qemu=${word#*=} ;;
	esac
done

[ -z "$more_programs" ] || programs=$programs,$more_programs
echo "rkvm-init: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, action $action"
case "$action" in
check)
	# Each program prints one KTAP document; module_load runs first and leaves rkvm loaded.
	for t in $(echo "$programs" | tr , ' '); do
		echo "rkvm-init: running $t"
		"/selftests/$t"
		echo "rkvm-init: $t exited with $?"
	done
	;;
run)
	# QEMU boots the Linux guest (selftests/guest/init.sh) on rkvm, or on the in-kernel
	# KVM on the *-kvm hosts: QEMU 7.2 through qemu_boot, or with rkvmtest.run_qemu=10
	# QEMU 10's default machine through interop. Exit 2: the hypervisor cannot run it yet.
	[ "$backend" = refused-kvm ] || insmod /lib/modules/rkvm.ko
	if [ "$run_qemu" = 10 ]; then
		/selftests/interop run qemu-10
		status=$?
		echo "rkvm-init: interop exited with $status"
	else
		/selftests/qemu_boot run
		status=$?
		echo "rkvm-init: qemu_boot exited with $status"
	fi
	if [ $status = 2 ]; then
		echo "rkvm-init: QEMU cannot boot a Linux guest on rkvm yet (above); running the demo VMM instead"
		/selftests/rkvm_demo
		echo "rkvm-init: demo exited with $?"
	fi
	;;
bench)
	# rkvmtest.bench=rkvm loads rkvm; =kvm uses the in-kernel KVM of the same kernel.
	dev=/dev/kvm
	if [ "$bench" = rkvm ]; then
		insmod /lib/modules/rkvm.ko
		dev=/dev/rkvm
	fi
	/selftests/bench "$dev" "${iters:-10000}"
	echo "rkvm-init: bench exited with $?"
	# The macro row: QEMU boots the Linux guest; under icount the host's clock from QEMU's
	# start to the guest's /init counts instructions (1 ns each).
	/selftests/qemu_boot run > /tmp/qemu_boot.log 2>&1
	echo "rkvm-init: qemu_boot exited with $?"
	sed -n 's/^# run: to \/init \([0-9]*\)\.\([0-9]*\) s.*/bench,guest_linux_boot_to_init,\1\20000000,1,1000000000/p' /tmp/qemu_boot.log
	;;
conformance)
	# The kernel's KVM selftests (/kvm-selftests) against rkvm (rkvmtest.target=rkvm,
	# through the /dev/kvm it registers) or the in-kernel KVM (=kvm). One line per test:
	# conformance,<name>,<pass|fail|skip>,<exit status> (kselftest: 0 pass, 4 skip).
	if [ "$target" = rkvm ]; then
		insmod /lib/modules/rkvm.ko || echo "rkvm-init: insmod rkvm.ko failed"
	fi
	ls -l /dev/kvm
	cd /tmp
	for t in /kvm-selftests/* /kvm-selftests/arm64/*; do
		[ -f "$t" ] || continue
		name=${t#/kvm-selftests/}
		if [ -n "$ctests" ]; then
			case ",$ctests," in *",$name,"*) ;; *) continue ;; esac
		fi
		echo "rkvm-init: running $name"
		start=$(date +%s)
		timeout "${ctimeout:-60}" "$t" >/tmp/conformance.out 2>&1
		status=$?
		case $status in 0) result=pass ;; 4) result=skip ;; *) result=fail ;; esac
		if [ $result != pass ]; then
			# The assertion (file:line, expression, message), else the output's tail.
			if grep -q "Test Assertion Failure" /tmp/conformance.out; then
				grep -A1 "Test Assertion Failure" /tmp/conformance.out | tail -n 1
				grep -v "^ *0x\|^ *(inlined by)\|^ *pid=\|addr2line" /tmp/conformance.out | tail -n 2
			else
				tail -n 4 /tmp/conformance.out
			fi | grep -v "^Random seed\|^TAP version\|^ *$" | awk '!seen[$0]++' |
				sed "s|^|conformance-log,$name: |"
		fi
		echo "conformance-time,$name,$(($(date +%s) - start))"
		echo "conformance,$name,$result,$status"
	done
	;;
esac
if [ -w /sys/kernel/debug/kmemleak ]; then
	# Debug kernels: report what leaked (the harness fails on any "unreferenced object").
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
fi
echo "rkvm-init: done"
poweroff -f
