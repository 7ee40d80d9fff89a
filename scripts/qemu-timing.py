#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Wall-clock times of the QEMU guest boots in an emulated host's console.

  qemu-timing.py stamp FILE         copy stdin to stdout line by line; each qemu_boot
                                    timing line ("# qemu-timing: NAME start|console MS|init MS|end MS")
                                    goes to FILE with this machine's monotonic clock
  qemu-timing.py report MODE FILE   print each boot's time to the guest's first console
                                    output, to its /init and to QEMU's exit: wall (this machine) and virtual (MS, the
                                    emulated host's CLOCK_MONOTONIC, measured by qemu_boot)

The two clocks differ when the emulated host's clock does not follow real time (icount,
a stalled emulator); see Documentation/qemu.rst.
"""
import re
import sys
import time

TIMING = re.compile(rb"^# qemu-timing: (\S+) (start|console|init|end)(?: (\d+))?")


def stamp(path):
    # First in the console pipeline: a stdio filter before it (tr) would hand lines on
    # in 4 KiB blocks and blur the stamps.
    with open(path, "w") as out:
        while True:
            line = sys.stdin.buffer.readline()
            if not line:
                return 0
            now = time.monotonic()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            m = TIMING.match(line)
            if m:
                out.write(f"{now:.3f} {line.decode(errors='replace').strip()}\n")
                out.flush()


def report(mode, path):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return 0
    boots = {}
    for line in lines:
        wall, text = line.split(" ", 1)
        m = TIMING.match(text.encode())
        if not m:
            continue
        name, what, ms = m.group(1).decode(), m.group(2).decode(), m.group(3)
        b = boots.setdefault(name, {})
        b[what] = (float(wall), int(ms) / 1000 if ms else None)
    for name, b in boots.items():
        if "start" not in b:
            continue
        t0 = b["start"][0]
        parts = []
        for what, label in (("console", "to the guest's first output"), ("init", "to /init"),
                            ("end", "to power-off")):
            if what in b:
                wall, virt = b[what]
                parts.append(f"{label} {wall - t0:.2f} s wall, {virt:.2f} s virtual")
            else:
                parts.append(f"{label}: not reached")
        print(f"[rkvm] {mode}: QEMU guest {name}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "stamp":
        sys.exit(stamp(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    sys.exit(__doc__)
