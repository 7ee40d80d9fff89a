#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn `bench` console logs into a table, Documentation/bench.csv and bench.png.

Arguments: the output folder, then CONFIG:REP:LOGFILE per boot. Each log holds lines
`bench,<op>,<ticks>,<iterations>,<cntfrq>` from selftests/src/bin/bench.rs. Under
`-icount shift=0` one nanosecond of virtual time is one instruction, so an operation's
cost in instructions is ticks * 1e9 / cntfrq / iterations, minus the empty loop's.
"""
import csv
import os
import re
import sys

ROWS = [
    ("hypercall", "hypercall handled in the hypervisor (PSCI_VERSION)"),
    ("mmio_user", "MMIO exit to the VMM and back"),
    ("mmio_kernel", "MMIO emulated in the kernel (vGIC distributor register read)"),
    ("sysreg_trap", "trapped system-register read (ID_AA64PFR0_EL1)"),
    ("sgi_self_ack_eoi", "SGI to itself (trapped ICC_SGI1R_EL1), acknowledge and virtual EOI"),
    ("ipi_round_trip", "IPI vCPU 0 -> 1 -> 0, each waiting in WFI, on two host CPUs"),
    ("ipi_round_trip_no_poll", "the same with halt polling off (KVM_CAP_HALT_POLL = 0): WFI sleeps"),
    ("ipi_round_trip_one_cpu", "the same with both vCPU threads on one host CPU (puts and loads)"),
    ("timer_irq_latency", "virtual timer deadline to the guest's acknowledge"),
    ("timer_irq_latency_long_lead", "the same with the deadline 20000 ticks ahead, not 2000"),
    ("kvm_run_immediate_exit", "KVM_RUN with immediate_exit set, timed by the VMM: the ioctl alone"),
    ("fp_first_use", "guest FP first use after a load"),
    ("guest_linux_boot_to_init", "QEMU 7.2 boots the Linux guest: from QEMU's start to the guest's /init"),
]
CONFIGS = ["rkvm-vhe", "kvm-vhe", "rkvm-nvhe", "kvm-nvhe"]
LINE = re.compile(r"^bench,(\w+),(\d+),(\d+),(\d+)")


def parse(path):
    """Per-iteration instruction counts by operation, from one console log."""
    raw = {}
    for line in open(path, errors="replace"):
        m = LINE.match(line.strip())
        if m:
            op, ticks, iters, freq = m.group(1), *map(int, m.groups()[1:])
            raw[op] = ticks * 1e9 / freq / iters
    if "loop" not in raw:
        return {}
    base = raw["loop"]
    out = {}
    for op in ("hypercall", "mmio_user", "mmio_kernel", "sysreg_trap", "sgi_self_ack_eoi",
               "ipi_round_trip", "ipi_round_trip_no_poll", "ipi_round_trip_one_cpu"):
        if op in raw:
            out[op] = raw[op] - base
    # Reported as the summed latency, timed by the VMM, or a whole boot: no guest loop to
    # subtract.
    for op in ("timer_irq_latency", "timer_irq_latency_long_lead", "kvm_run_immediate_exit",
               "guest_linux_boot_to_init"):
        if op in raw:
            out[op] = raw[op]
    if "mmio_user_fp_first_use" in raw and "mmio_user" in raw:
        out["fp_first_use"] = raw["mmio_user_fp_first_use"] - raw["mmio_user"]
    return out


def main():
    outdir, args = sys.argv[1], sys.argv[2:]
    runs = {}
    for arg in args:
        config, rep, path = arg.split(":", 2)
        runs.setdefault(config, []).append(parse(path))

    def cell(config, op):
        values = [r[op] for r in runs.get(config, []) if op in r]
        if not values:
            return None, None
        return sum(values) / len(values), max(values) - min(values)

    header = ["operation"]
    for c in CONFIGS:
        header += [c, f"{c} spread"]
    header += ["rkvm/KVM VHE", "rkvm/KVM nVHE"]
    table = []
    for op, _ in ROWS:
        row = [op]
        means = {}
        for c in CONFIGS:
            mean, spread = cell(c, op)
            means[c] = mean
            row += ["n/a" if mean is None else f"{mean:.0f}", "" if spread is None else f"{spread:.0f}"]
        for r, k in (("rkvm-vhe", "kvm-vhe"), ("rkvm-nvhe", "kvm-nvhe")):
            row.append(f"{means[r] / means[k]:.2f}" if means[r] and means[k] else "n/a")
        table.append(row)

    with open(os.path.join(outdir, "bench.csv"), "w", newline="") as f:
        csv.writer(f).writerows([header] + table)

    print("Instructions per operation (icount, mean of 2 runs; spread = max - min):")
    widths = [max(len(str(r[i])) for r in [header] + table) for i in range(len(header))]
    for r in [header] + table:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
    for op, what in ROWS:
        print(f"  {op}: {what}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: Documentation/bench.png not regenerated)")
        return 0
    fig, ax = plt.subplots(figsize=(13, 5))
    width = 0.2
    for i, c in enumerate(CONFIGS):
        ys = [cell(c, op)[0] or 0 for op, _ in ROWS]
        xs = [j + (i - 1.5) * width for j in range(len(ROWS))]
        ax.bar(xs, ys, width, label=c)
    ax.set_xticks(range(len(ROWS)), [op for op, _ in ROWS], rotation=20, ha="right")
    ax.set_yscale("log")  # rows span from a few hundred to tens of thousands
    ax.set_ylabel("instructions per operation (log scale)")
    ax.set_title("rkvm vs in-kernel KVM (Linux 7.3, QEMU -icount shift=0); no bar = not available")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench.png"), dpi=100)
    print(f"wrote {os.path.join(outdir, 'bench.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
