#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Collect KTAP results from emulated-host console logs and judge the run.

Arguments: one MODE:QEMU_STATUS:SECONDS:LOGFILE per booted host. A host fails when a test
fails, a KTAP plan is not fully reported (a program crashed), the console shows a kernel
warning, oops, panic or lockdep report, QEMU timed out or failed, or /init never finished.
Prints per-mode lines and a final "N passed, M failed[, K skipped]"; exits 1 on failure.
"""
import re
import sys

RESULT = re.compile(r"^(not ok|ok) (\d+) (\S+)(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)$")
BAD = [
    re.compile(p)
    for p in (
        r"Oops",
        r"BUG:",
        r"WARNING:",
        r"Kernel panic",
        r"possible circular locking dependency",
        r"possible recursive locking",
        r"inconsistent lock state",
        r"suspicious RCU usage",
        r"Call trace:",
        r"kmemleak: .* new suspected memory leaks",
        r"unreferenced object 0x",
        r"BUG: sleeping function called from invalid context",
        r"KASAN:",
        r"UBSAN:",
    )
]


def expected_oom_report(lines):
    """Marks the lines of memory-cgroup OOM reports for the cgroups the resource_limits
    selftest makes (rkvm-limits-*), whose stack dump is expected; the same rule as
    expected_oom_report() in selftests/src/lib.rs."""
    marks = [False] * len(lines)
    start = None
    for i, line in enumerate(lines):
        if "invoked oom-killer:" in line:
            start = i
        elif "Memory cgroup out of memory: Killed process" in line and start is not None:
            if any("oom-kill:constraint=CONSTRAINT_MEMCG" in l and "oom_memcg=/rkvm-limits-" in l
                   for l in lines[start:i]):
                marks[start:i + 1] = [True] * (i + 1 - start)
            start = None
    return marks


def judge(mode, status, seconds, path):
    text = open(path, errors="replace").read().splitlines()
    expected = expected_oom_report(text)
    passed = failed = skipped = 0
    problems = []
    planned = None
    seen = 0
    suite = "?"
    for line, in_oom_report in zip(text, expected):
        if line.startswith("# suite: "):
            if planned is not None and seen != planned:
                problems.append(f"{suite}: {seen} of {planned} results reported")
            suite, planned, seen = line[9:].strip(), None, 0
            continue
        m = PLAN.match(line)
        if m:
            planned = int(m.group(1))
            continue
        m = RESULT.match(line)
        if m:
            seen += 1
            if m.group(1) == "not ok":
                failed += 1
                problems.append(f"{suite}: {m.group(3)} failed")
            elif "# SKIP" in m.group(4):
                skipped += 1
            else:
                passed += 1
            continue
        for bad in BAD:
            if not in_oom_report and bad.search(line):
                problems.append(f"console: {line.strip()}")
                break
    if planned is not None and seen != planned:
        problems.append(f"{suite}: {seen} of {planned} results reported")
    if status == 124:
        problems.append(f"timed out after {seconds} s")
    elif status != 0:
        problems.append(f"QEMU exited with status {status}")
    if not any(l.startswith("rkvm-init: done") for l in text):
        problems.append("/init did not finish (crash or hang)")
    if passed + failed + skipped == 0:
        problems.append("no test results")
    return passed, failed, skipped, problems


def main():
    total = [0, 0, 0]
    ok = True
    for arg in sys.argv[1:]:
        mode, status, seconds, path = arg.split(":", 3)
        p, f, s, problems = judge(mode, int(status), int(seconds), path)
        total = [total[0] + p, total[1] + f, total[2] + s]
        line = f"[rkvm] {mode} host: {p} passed, {f} failed"
        line += f", {s} skipped" if s else ""
        print(f"{line} ({seconds} s, console: {path})")
        for problem in problems:
            print(f"[rkvm]   {mode}: {problem}")
        ok = ok and not problems
    summary = f"{total[0]} passed, {total[1]} failed"
    summary += f", {total[2]} skipped" if total[2] else ""
    print(summary)
    if not ok:
        print("[rkvm] FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
