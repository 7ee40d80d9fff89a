#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make interop`: the client matrix of issue 14 (Documentation/interop.rst). Boots each
# emulated host mode once, one at a time, and runs the `interop` selftest on it: QEMU 7.2
# and QEMU 10 with their default `virt` machines, kvmtool with and without an ITS, each
# booting the project's guest with four vCPUs, a virtio disk and a virtio NIC; on rkvm
# (vhe, nvhe, nvhe-a72) and on the in-kernel KVM of the same kernel (the *-kvm modes).
#
#   interop.sh [MODE...]      default: vhe nvhe nvhe-a72 vhe-kvm nvhe-kvm nvhe-a72-kvm
#
# Prints the table (client x host mode x hypervisor) and, when the whole default matrix
# ran, writes it into Documentation/interop.rst (RKVM_INTEROP_WRITE=0: print only). Exits
# non-zero when a client fails, on rkvm or on the in-kernel KVM baseline, or a host is in
# trouble (RKVM_INTEROP_STRICT=0: rkvm's failures are only reported). RKVM_APPEND=
# rkvmtest.interop=qemu-10,kvmtool-its limits the clients; RKVM_INTEROP_FIRECRACKER=1 adds
# Firecracker 1.16.1, a boot and a full snapshot round trip (built on first use, about 5
# minutes). Logs: out/interop/logs/.
source "$(dirname "$0")/common.sh"

default=(vhe nvhe nvhe-a72 vhe-kvm nvhe-kvm nvhe-a72-kvm)
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=("${default[@]}")
out=${RKVM_OUT:-$RKVM_TOP/out}/interop
mkdir -p "$out"
rm -f "$out/check-summaries"
log "interop: ${modes[*]} (one host at a time; about 3-5 minutes each on 2 cores)"
# Every client: make check's subset (RKVM_CHECK_INTEROP, exported by the Makefile) does
# not apply here.
RKVM_OUT=$out RKVM_PROGRAMS=interop RKVM_KVM_PROGRAMS=interop RKVM_QEMU_STRESS=0 RKVM_CHECK_INTEROP= \
	"$RKVM_TOP/scripts/run-hosts.sh" check "${modes[@]}" >/dev/null || true
write=()
if [ "${RKVM_INTEROP_WRITE:-1}" = 1 ] && [ "${modes[*]}" = "${default[*]}" ] &&
   [ -z "${RKVM_APPEND:-}" ]; then
	write=(--write "$RKVM_TOP/Documentation/interop.rst")
fi
python3 "$RKVM_TOP/scripts/interop-table.py" "${write[@]}" $(cat "$out/check-summaries")
