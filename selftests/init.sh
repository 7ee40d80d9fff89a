#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the emulated arm64 host: mount the basics, run what the kernel command line
# asks for (rkvmtest.action=check|run), print an end marker, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp

action=check
programs=module_load,system_ioctl,vm_run,lazy_switch,vm_errors,vm_robustness,bench_smoke,hostile_guest,isolation,ioctl_fuzz
for word in $(cat /proc/cmdline); do
	case "$word" in
	rkvmtest.action=*) action=${word#*=} ;;
	rkvmtest.programs=*) programs=${word#*=} ;;
	rkvmtest.bench=*) bench=${word#*=} ;;
	rkvmtest.iters=*) iters=${word#*=} ;;
	esac
done

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
	insmod /lib/modules/rkvm.ko && /selftests/rkvm_demo
	echo "rkvm-init: demo exited with $?"
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
	;;
esac
if [ -w /sys/kernel/debug/kmemleak ]; then
	# Debug kernels: report what leaked (the harness fails on any "unreferenced object").
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
fi
echo "rkvm-init: done"
poweroff -f
