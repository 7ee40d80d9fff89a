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
#   rkvm-guest: net <if> <addr> ping <gw> ok|failed   (rkvmguest.net=<addr/len>,<gw> only)
#                                     the first NIC brought up with that address; the
#                                     gateway (the VMM's user-mode network) must answer
#   rkvm-guest: irq <line>            each /proc/interrupts line of a virtio device or MSI
#   rkvm-guest: interrupts its-msi <n> virtio <m>   counts of those lines: MSIs through
#                                     the ITS, and lines naming a virtio device
#   rkvm-guest: snapshot wait         (rkvmguest.snapshot=<sector> only) the host may now
#                                     pause, snapshot and restore the VM; the guest polls
#                                     that disk sector for the host's "rkvm-resume-<id>"
#   rkvm-guest: snapshot marker <m> uptime <a> -> <b> s   what it found (or "none" after
#                                     200 s of guest time), the guest's clock across it
#   rkvm-guest: stress <n> workers, <rounds> rounds, <s> s   (rkvmguest.stress=<s> only)
#   rkvm-guest: memory md5 <before> <after>   (rkvmguest.memcheck=1 only) md5 of 32 MiB of
#                                     random bytes in guest RAM (tmpfs) before and after
#                                     the load: a migration in between must keep them
#   rkvm-guest: klog <line>           each kernel message of level warning or worse
#   rkvm-guest: done                  second marker, then PSCI SYSTEM_OFF (poweroff -f)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Kernel messages still coming (asynchronous probes, a slow 8250) would cut into these
# lines on the shared console: the console gets only emergencies from here on, and the
# warnings and worse are listed from the log at the end (an oops or panic still prints).
dmesg -n 1
echo "rkvm-guest: init started, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"

stress=0
net=
snapshot=
memcheck=0
for word in $(cat /proc/cmdline); do
	case "$word" in
	rkvmguest.stress=*) stress=${word#*=} ;;
	rkvmguest.memcheck=*) memcheck=${word#*=} ;;
	rkvmguest.net=*) net=${word#*=} ;;
	rkvmguest.snapshot=*) snapshot=${word#*=} ;;
	esac
done

# Devices behind an asynchronously probed PCI host may appear after /init has started.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done

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

# The NIC (interop clients): a static address on the VMM's user-mode network and a few
# pings of its gateway, which QEMU's slirp and kvmtool's uip answer themselves.
if [ -n "$net" ]; then
	nic=
	i=0
	while [ -z "$nic" ] && [ $i -lt 100 ]; do
		for d in /sys/class/net/*; do
			[ "${d##*/}" = lo ] || { nic=${d##*/}; break; }
		done
		[ -n "$nic" ] || usleep 100000
		i=$((i + 1))
	done
	if [ -z "$nic" ]; then
		echo "rkvm-guest: net none found"
	else
		ip link set lo up
		ip link set "$nic" up
		ip addr add "${net%,*}" dev "$nic"
		gw=${net#*,}
		if ping -c 3 -W 5 "$gw" >/tmp/ping.out 2>&1; then r=ok; else r=failed; fi
		echo "rkvm-guest: net $nic ${net%,*} ping $gw $r ($(grep -o '[0-9]* packets received' /tmp/ping.out))"
	fi
fi

# Which interrupts the devices use: MSIs through the ITS show as "ITS-...MSI..." lines.
grep -i 'virtio\|msi' /proc/interrupts | tr -s ' ' | while read -r l; do echo "rkvm-guest: irq $l"; done
echo "rkvm-guest: interrupts its-msi $(grep -c 'ITS.*MSI' /proc/interrupts) virtio $(grep -c virtio /proc/interrupts)"

cpus=$(grep -c ^processor /proc/cpuinfo)
echo "rkvm-guest: cpus online $cpus ($(cat /sys/devices/system/cpu/online))"

# Snapshot round trip (interop's firecracker-snapshot): the host snapshots the VM while
# the guest polls a disk sector, restores it in a new VMM and then writes a marker there.
# Finding it needs the restored vCPUs, timer and disk with its interrupt to carry on.
if [ -n "$snapshot" ] && [ -b /dev/vda ]; then
	t0=$(cut -d' ' -f1 /proc/uptime)
	end=$(( ${t0%.*} + 200 ))
	echo "rkvm-guest: snapshot wait"
	m=
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		blockdev --flushbufs /dev/vda
		m=$(dd if=/dev/vda bs=512 skip="$snapshot" count=1 2>/dev/null | tr -dc 'a-z0-9-')
		case "$m" in rkvm-resume-*) break ;; esac
		m=
		usleep 100000
	done
	echo "rkvm-guest: snapshot marker ${m:-none} uptime $t0 -> $(cut -d' ' -f1 /proc/uptime) s"
fi

if [ "$memcheck" = 1 ]; then
	dd if=/dev/urandom of=/tmp/memcheck bs=1M count=32 2>/dev/null
	mem_before=$(md5sum /tmp/memcheck | cut -d' ' -f1)
fi

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

if [ "$memcheck" = 1 ]; then
	echo "rkvm-guest: memory md5 $mem_before $(md5sum /tmp/memcheck | cut -d' ' -f1)"
fi

dmesg -r | grep '^<[0-4]>' | while read -r l; do echo "rkvm-guest: klog ${l#<?>}"; done
echo "rkvm-guest: done"
poweroff -f
