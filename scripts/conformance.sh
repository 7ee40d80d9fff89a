#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make conformance`: the kernel's own KVM selftests (tools/testing/selftests/kvm, arm64)
# against rkvm and against the in-kernel KVM of the same test kernel, side by side.
#
# Builds the selftests of the cached kernel source (cross-compiled, static) once per kernel
# version into $RKVM_CACHE/kvm-selftests-$RKVM_KVER, packs them into the initramfs under
# /kvm-selftests, boots the emulated VHE host twice (rkvm: kvm-arm.mode=none with
# /dev/rkvm bind-mounted over /dev/kvm; kvm: the in-kernel KVM) and writes
# Documentation/conformance.rst.
#   RKVM_CONF_TIMEOUT   per-test timeout in seconds inside the host (default 60)
#   RKVM_CONF_TESTS     comma-separated test names to run (default: all), e.g.
#                       guest_print_test,arm64/vgic_init
#   RKVM_CONF_TARGETS   targets to boot (default "kvm rkvm")
#   RKVM_CONF_PARALLEL  1: boot the targets at the same time (faster; timing-sensitive
#                       tests may suffer on a small build machine)
#   RKVM_CONF_BOOT_TIMEOUT  whole-boot timeout in seconds (default 5400)
#   RKVM_CONF_REPORT_ONLY   1: no boots, only rewrite the table from the existing logs
source "$(dirname "$0")/common.sh"

src=$(kernel_src_dir)
[ -d "$src/tools/testing/selftests/kvm" ] || die "no kernel source at $src (run 'make test-kernel')"
cache=$RKVM_CACHE/kvm-selftests-$RKVM_KVER
bindir=$cache/bin

# The source tree stays untouched: uapi headers go to $cache/hdr/usr/include (`make
# headers`, O=; headers_install would need rsync), the arm64 generated
# sysreg header to $cache/obj (abs_objdir), objects and programs to $cache/build (OUTPUT)
# and try-run's scratch files to $cache/tmp (TMPOUT).
build_selftests() {
	log "building the Linux $RKVM_KVER KVM selftests for arm64 (cached in $cache)"
	rm -rf "$cache" && mkdir -p "$cache"/{hdr,obj/tools,build,tmp}
	make -s -C "$src" O="$cache/hdr" ARCH=arm64 headers >"$cache/build.log" 2>&1 ||
		die "make headers failed (log: $cache/build.log)"
	make -C "$src/tools/testing/selftests/kvm" -j"$(nproc)" \
		ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- LDFLAGS=-static \
		KHDR_INCLUDES="-isystem $cache/hdr/usr/include" \
		OUTPUT="$cache/build" abs_objdir="$cache/obj" TMPOUT="$cache/tmp/" \
		>>"$cache/build.log" 2>&1 || die "selftests build failed (log: $cache/build.log)"
	mkdir -p "$bindir/arm64"
	local f rel
	for f in "$cache"/build/* "$cache"/build/arm64/*; do
		rel=${f#"$cache"/build/}
		[ -f "$f" ] && [ -x "$f" ] && [[ "$rel" != *.* ]] || continue
		aarch64-linux-gnu-strip -o "$bindir/$rel" "$f"
	done
	touch "$cache/.done"
}
[ -f "$cache/.done" ] || build_selftests
log "$(find "$bindir" -type f | wc -l) selftest programs in $bindir"

image=$(kernel_build_dir test)/arch/arm64/boot/Image
[ -f "$image" ] || die "no kernel image at $image (run 'make test-kernel')"
outdir=${RKVM_OUT:-$RKVM_TOP/out}; logdir=$outdir/logs
mkdir -p "$logdir"
initrd=$outdir/initramfs-conformance.cpio.gz

ctimeout=${RKVM_CONF_TIMEOUT:-60}
tests=${RKVM_CONF_TESTS:+rkvmtest.tests=$RKVM_CONF_TESTS}
boot() {
	local target=$1 append=
	[ "$target" = rkvm ] && append="kvm-arm.mode=none"
	log "conformance: booting the emulated VHE host, target $target (log: $logdir/conformance-$target.log)"
	local start=$SECONDS
	timeout --foreground -k 10 "${RKVM_CONF_BOOT_TIMEOUT:-5400}" qemu-system-aarch64 \
		-M virt,virtualization=on,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 2G \
		-nographic -no-reboot -nic none \
		-kernel "$image" -initrd "$initrd" \
		-append "console=ttyAMA0 panic=-1 rkvmtest.action=conformance rkvmtest.target=$target rkvmtest.timeout=$ctimeout $tests $append" \
		</dev/null 2>&1 | tr -d '\r' >"$logdir/conformance-$target.log" || true
	grep -q '^rkvm-init: done' "$logdir/conformance-$target.log" ||
		log "conformance: the $target host did not finish (log: $logdir/conformance-$target.log)"
	log "conformance: $target took $((SECONDS - start)) s"
}
start=$SECONDS
[ "${RKVM_CONF_REPORT_ONLY:-0}" = 1 ] || RKVM_EXTRA_DIR=$bindir "$RKVM_TOP/scripts/mkinitramfs.sh" "$initrd"
targets=(${RKVM_CONF_TARGETS:-kvm rkvm})
if [ "${RKVM_CONF_REPORT_ONLY:-0}" = 1 ]; then
	:
elif [ "${RKVM_CONF_PARALLEL:-0}" = 1 ]; then
	for t in "${targets[@]}"; do boot "$t" & done
	wait
else
	for t in "${targets[@]}"; do boot "$t"; done
fi
log "conformance: all boots took $((SECONDS - start)) s"

python3 - "$RKVM_TOP/Documentation/conformance.rst" "$logdir" "$ctimeout" <<'EOF'
import os, re, sys
out, logdir, ctimeout = sys.argv[1:]
res, notes = {}, {}
for target in ("kvm", "rkvm"):
    path = os.path.join(logdir, f"conformance-{target}.log")
    res[target], notes[target] = {}, {}
    if not os.path.exists(path):
        continue
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"conformance,([^,]+),(pass|fail|skip),(\d+)$", line)
        if m:
            res[target][m[1]] = (m[2], int(m[3]))
        m = re.match(r"conformance-log,([^:]+): (.*)$", line)
        if m:
            notes[target].setdefault(m[1], []).append(m[2].strip())
names = sorted(set(res["kvm"]) | set(res["rkvm"]))

def cell(target, n):
    if n not in res[target]:
        return "not run"
    r, st = res[target][n]
    if r == "fail" and st in (124, 137, 143):
        return f"fail (timeout, {st})"
    return r if r == "pass" else f"{r} ({st})"

def note(n):
    if res["rkvm"].get(n, ("",))[0] == "pass":
        return ""
    # The assertion's expression and message, or the skip reason.
    lines = [l for l in notes["rkvm"].get(n, []) if l and not
             re.match(r"(Random seed|TAP version|lru_gen|sh: )", l)]
    # Prefer the failed assertion (file.c:line: expression) over later skip lines.
    asserts = [l for l in lines if re.match(r"\S+\.[ch]:\d+: ", l)]
    if asserts and res["rkvm"][n][0] == "fail":
        i = lines.index(asserts[0])
        lines = [asserts[0]] + [l for l in lines[i + 1:i + 3] if "SKIP" not in l][-1:]
    s = "; ".join(lines[-2:]).replace("|", "/").replace("`", "'")
    s = re.sub(r"^1\.\.0 # SKIP -? ?", "SKIP: ", s)
    return s[:150]

rows = [("Test", "KVM", "rkvm", "rkvm failure / skip detail")]
rows += [(n, cell("kvm", n), cell("rkvm", n), note(n)) for n in names]
w = [max(len(r[i]) for r in rows) for i in range(4)]
sep = "  ".join("=" * x for x in w)
fmt = lambda r: "  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip()
counts = {}
for t in ("kvm", "rkvm"):
    c = {"pass": 0, "fail": 0, "skip": 0}
    for r, _ in res[t].values():
        c[r] += 1
    counts[t] = c
explain = open(out).read().split(".. explanation-start")[1] if os.path.exists(out) and \
    ".. explanation-start" in open(out).read() else "\n"
with open(out, "w") as f:
    f.write(f""".. SPDX-License-Identifier: GPL-2.0

===============================================
KVM selftest conformance (``make conformance``)
===============================================

``make conformance`` builds the Linux kernel's own KVM selftests
(``tools/testing/selftests/kvm``, arm64, cross-compiled and static) from the cached kernel
source, packs them into the initramfs under ``/kvm-selftests`` and boots the emulated VHE
host twice with the same kernel and the same binaries:

* **KVM**: the in-kernel KVM of the test kernel;
* **rkvm**: ``kvm-arm.mode=none``, ``rkvm.ko`` loaded and ``/dev/rkvm`` bind-mounted over
  ``/dev/kvm`` (the selftests open ``/dev/kvm``, a compile-time path).

Each program runs with a {ctimeout} s timeout. Exit status 0 is a pass, 4 (``KSFT_SKIP``)
a skip, anything else a failure (124/143: killed by the timeout). The per-test console
output is in ``out/logs/conformance-{{kvm,rkvm}}.log`` (``conformance-log`` lines hold the
first lines of a failed assertion or the tail of a failing/skipping test's output). The
emulated host runs under TCG, so timeouts of long-running performance tests say little
about either hypervisor.

Totals: KVM {counts['kvm']['pass']} pass, {counts['kvm']['fail']} fail, {counts['kvm']['skip']} skip;
rkvm {counts['rkvm']['pass']} pass, {counts['rkvm']['fail']} fail, {counts['rkvm']['skip']} skip
({len(names)} programs).

{sep}
{fmt(rows[0])}
{sep}
""")
    for r in rows[1:]:
        f.write(fmt(r) + "\n")
    f.write(sep + "\n\n.. explanation-start" + explain)
print(f"[rkvm] conformance: KVM {counts['kvm']}, rkvm {counts['rkvm']}; wrote {out}")
EOF
