#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the Linux guest that QEMU boots inside the emulated host (qemu_boot selftest,
# `make run`). Each step prints one "rkvm-guest:" line the selftest checks:
#   rkvm-guest: init started          first marker: the kernel reached userspace
#   rkvm-guest: disk md5 <hex>        md5 of the first 512 KiB of /dev/vda (the host
#                                     filled them with random bytes and compares)
#   rkvm-guest: disk copy ok|failed   those 512 KiB copied to offset 4 MiB through the
#                                     device and read back (the host checks the image)
#   rkvm-guest: cpus online <n>       from /proc/cpuinfo
#   rkvm-guest: stress <n> workers, <rounds> rounds, <s> s   (rkvmguest.stress=<s> only)
#   rkvm-guest: done                  second marker, then PSCI SYSTEM_OFF (poweroff -f)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "rkvm-guest: init started, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"

stress=0
for word in $(cat /proc/cmdline); do
	case "$word" in rkvmguest.stress=*) stress=${word#*=} ;; esac
done

# The disk: read what the host wrote, write a copy elsewhere, drop the block device's
# page cache so the read-back goes to the device, compare.
if [ -b /dev/vda ]; then
	echo "rkvm-guest: disk md5 $(dd if=/dev/vda bs=64k count=8 2>/dev/null | md5sum | cut -d' ' -f1)"
	dd if=/dev/vda of=/dev/vda bs=64k count=8 seek=64 conv=fsync 2>/dev/null
	blockdev --flushbufs /dev/vda
	a=$(dd if=/dev/vda bs=64k count=8 2>/dev/null | md5sum)
	b=$(dd if=/dev/vda bs=64k count=8 skip=64 2>/dev/null | md5sum)
	if [ "$a" = "$b" ]; then echo "rkvm-guest: disk copy ok"; else echo "rkvm-guest: disk copy failed"; fi
else
	echo "rkvm-guest: no /dev/vda"
fi

cpus=$(grep -c ^processor /proc/cpuinfo)
echo "rkvm-guest: cpus online $cpus ($(cat /sys/devices/system/cpu/online))"

# CPU- and timer-heavy: one worker pinned to each CPU alternates a busy loop with 1 ms
# sleeps until the deadline; each reports its rounds, all must finish.
if [ "$stress" -gt 0 ]; then
	start=$(cut -d. -f1 /proc/uptime)
	cpu=0
	while [ $cpu -lt "$cpus" ]; do
		taskset -c $cpu sh -c '
			end=$(( $(cut -d. -f1 /proc/uptime) + '"$stress"' )); rounds=0
			while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do
				i=0; while [ $i -lt 200 ]; do i=$((i + 1)); done
				usleep 1000; rounds=$((rounds + 1))
			done
			echo $rounds > /tmp/rounds.'$cpu &
		cpu=$((cpu + 1))
	done
	wait
	total=0; workers=0
	for f in /tmp/rounds.*; do
		[ -f "$f" ] || continue
		n=$(cat "$f"); [ "$n" -gt 0 ] && workers=$((workers + 1)); total=$((total + n))
	done
	echo "rkvm-guest: stress $workers workers, $total rounds, $(( $(cut -d. -f1 /proc/uptime) - start )) s"
fi

echo "rkvm-guest: done"
poweroff -f
