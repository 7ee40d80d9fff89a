#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The interop table from the emulated hosts' console logs (scripts/interop.sh).

Arguments: MODE:QEMU_STATUS:SECONDS:LOGFILE per booted host (run-hosts.sh's summaries),
optionally preceded by --write FILE (replace the table between the markers of an .rst
file) and --strict (rkvm failures fail too, the default). Each host's `interop` selftest prints one
"# interop-result: <client> <pass|fail|skip> <seconds> <reason>" line per client; the
host itself is judged as make check judges it (scripts/ktap-summary.py): a crash, a hang
or a kernel warning is a failure of every cell of that host.

Prints the table (client x host mode x hypervisor) and exits 1 when a cell did not pass
or a host was in trouble. RKVM_INTEROP_STRICT=0 only reports rkvm's failing cells (for
experiments on a client rkvm does not run yet); the in-kernel KVM baseline always counts.
"""
import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("ktap_summary", os.path.join(HERE, "ktap-summary.py"))
ktap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ktap)

CLIENTS = ["qemu-7.2", "qemu-10", "kvmtool-its", "kvmtool-gicv3"]
RESULT = re.compile(r"^# interop-result: (\S+) (pass|fail|skip) (\d+) ?(.*)$")
BEGIN = ".. interop-table-begin"
END = ".. interop-table-end"


def host_column(mode):
    hyp = "KVM" if mode.endswith("-kvm") else "rkvm"
    return mode[:-4] if hyp == "KVM" else mode, hyp


def read_host(mode, status, seconds, path):
    """{client: (verdict, seconds, reason)} and the host's own problems."""
    _, _, _, problems = ktap.judge(mode, status, seconds, path)
    # A client's failure is its cell; everything else is the host's.
    problems = [p for p in problems if not p.startswith("rkvm_interop: ")]
    cells = {}
    for line in open(path, errors="replace").read().splitlines():
        m = RESULT.match(line)
        if m:
            cells[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4).strip())
    return cells, problems


def main(argv):
    write = None
    strict = os.environ.get("RKVM_INTEROP_STRICT", "1") == "1"
    args = []
    it = iter(argv)
    for a in it:
        if a == "--write":
            write = next(it)
        elif a == "--strict":
            strict = True
        else:
            args.append(a)
    columns = []  # (label, cells, problems, hyp)
    for arg in args:
        mode, status, seconds, path = arg.split(":", 3)
        cells, problems = read_host(mode, int(status), int(seconds), path)
        host, hyp = host_column(mode)
        columns.append((f"{host} {hyp}", cells, problems, hyp, int(seconds)))

    ok = True
    rows = []
    # Firecracker is optional: a row only when some host had it.
    clients = CLIENTS + [c for c in ["firecracker", "firecracker-snapshot"]
                         if any(col[1].get(c, ("skip",))[0] != "skip" for col in columns)]
    for client in clients:
        row = [client]
        for label, cells, problems, hyp, _ in columns:
            verdict, secs, reason = cells.get(client, ("fail", 0, "no result (the host did not get there)"))
            if problems and verdict == "pass":
                verdict, reason = "fail", "host: " + problems[0]
            text = f"pass ({secs} s)" if verdict == "pass" else f"{verdict}: {reason}"
            row.append(text)
            if verdict != "pass" and verdict != "skip" and (hyp == "KVM" or strict):
                ok = False
        rows.append(row)
    for label, cells, problems, hyp, _ in columns:
        for p in problems:
            print(f"[rkvm] interop: {label} host: {p}")
            ok = False

    header = ["client"] + [c[0] for c in columns]
    # The plain table: one block per client, one line per host.
    for row in rows:
        print(f"[rkvm] {row[0]}")
        for label, cell in zip(header[1:], row[1:]):
            print(f"[rkvm]   {label:<16} {cell}")
    print("[rkvm] host boots: " + ", ".join(f"{c[0]} {c[4]} s" for c in columns))

    if write:
        rst = [".. list-table::", "   :header-rows: 1", ""]
        for r in [header] + rows:
            rst.append("   * - " + r[0])
            rst.extend("     - " + c.replace("*", "\\*") for c in r[1:])
        text = open(write).read()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            open(write, "w").write(head + BEGIN + "\n\n" + "\n".join(rst) + "\n\n" + END + tail)
            print(f"[rkvm] table written to {write}")
        else:
            print(f"[rkvm] {write} has no {BEGIN}/{END} markers; table not written")
    print("[rkvm] interop: " + ("baseline passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
