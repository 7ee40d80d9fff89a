#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make conformance`: the kernel's own KVM selftests (tools/testing/selftests/kvm, arm64)
# against rkvm and against the in-kernel KVM of the same test kernel, side by side.
#
# Builds the selftests of the cached kernel source (cross-compiled, static) once per kernel
# version into $RKVM_CACHE/kvm-selftests-$RKVM_KVER, packs them into the initramfs under
# /kvm-selftests, boots the emulated host four times (rkvm: kvm-arm.mode=none with
# rkvm.ko loaded, which registers /dev/kvm; kvm: the in-kernel KVM; each on the VHE host and,
# with id_aa64mmfr1.vh=0, on the nVHE host) and writes Documentation/conformance.rst.
#   RKVM_CONF_TIMEOUT   per-test timeout in seconds inside the host (default 60)
#   RKVM_CONF_TESTS     comma-separated test names to run (default: all), e.g.
#                       guest_print_test,arm64/vgic_init
#   RKVM_CONF_TARGETS   targets to boot (default "kvm rkvm kvm-nvhe rkvm-nvhe")
#   RKVM_CONF_PARALLEL  N: boot N targets at a time (faster; timing-sensitive tests may
#                       suffer on a small build machine)
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
	case $target in rkvm*) append="kvm-arm.mode=none" ;; esac
	case $target in *-nvhe) append="$append id_aa64mmfr1.vh=0" ;; esac
	log "conformance: booting the emulated host, target $target (log: $logdir/conformance-$target.log)"
	local start=$SECONDS
	timeout --foreground -k 10 "${RKVM_CONF_BOOT_TIMEOUT:-5400}" qemu-system-aarch64 \
		-M virt,virtualization=on,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 2G \
		-nographic -no-reboot -nic none \
		-kernel "$image" -initrd "$initrd" \
		-append "console=ttyAMA0 panic=-1 rkvmtest.action=conformance rkvmtest.target=${target%-nvhe} rkvmtest.timeout=$ctimeout $tests $append" \
		</dev/null 2>&1 | tr -d '\r' >"$logdir/conformance-$target.log" || true
	grep -q '^rkvm-init: done' "$logdir/conformance-$target.log" ||
		log "conformance: the $target host did not finish (log: $logdir/conformance-$target.log)"
	log "conformance: $target took $((SECONDS - start)) s"
}
start=$SECONDS
[ "${RKVM_CONF_REPORT_ONLY:-0}" = 1 ] || RKVM_EXTRA_DIR=$bindir "$RKVM_TOP/scripts/mkinitramfs.sh" "$initrd"
targets=(${RKVM_CONF_TARGETS:-kvm rkvm kvm-nvhe rkvm-nvhe})
if [ "${RKVM_CONF_REPORT_ONLY:-0}" != 1 ]; then
	parallel=${RKVM_CONF_PARALLEL:-1}
	for ((i = 0; i < ${#targets[@]}; i += parallel)); do
		for t in "${targets[@]:i:parallel}"; do boot "$t" & done
		wait
	done
fi
log "conformance: all boots took $((SECONDS - start)) s"

python3 - "$RKVM_TOP/Documentation/conformance.rst" "$logdir" "$ctimeout" <<'EOF'
import os, re, sys
out, logdir, ctimeout = sys.argv[1:]
TARGETS = [("kvm", "KVM VHE"), ("rkvm", "rkvm VHE"), ("kvm-nvhe", "KVM nVHE"), ("rkvm-nvhe", "rkvm nVHE")]
res, notes = {}, {}
for target, _ in TARGETS:
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
names = sorted(set().union(*(res[t] for t, _ in TARGETS)))

def cell(target, n):
    if n not in res[target]:
        return "not run"
    r, st = res[target][n]
    if r == "fail" and st in (124, 137, 143):
        return f"fail (timeout, {st})"
    return r if r == "pass" else f"{r} ({st})"

def note(n):
    # The first rkvm target that did not pass, and its assertion or skip reason.
    target = next((t for t in ("rkvm", "rkvm-nvhe") if n in res[t] and res[t][n][0] != "pass"), None)
    if target is None:
        return ""
    lines = [l for l in notes[target].get(n, []) if l and not
             re.match(r"(Random seed|TAP version|lru_gen|sh: )", l)]
    # Prefer the failed assertion (file.c:line: expression) over later skip lines.
    asserts = [l for l in lines if re.match(r"\S+\.[ch]:\d+: ", l)]
    if asserts and res[target][n][0] == "fail":
        i = lines.index(asserts[0])
        lines = [asserts[0]] + [l for l in lines[i + 1:i + 3] if "SKIP" not in l][-1:]
    s = "; ".join(lines[-2:]).replace("|", "/").replace("`", "'")
    s = re.sub(r"^1\.\.0 # SKIP -? ?", "SKIP: ", s)
    prefix = "" if target == "rkvm" else "nVHE: "
    return (prefix + s)[:150]

rows = [("Test",) + tuple(label for _, label in TARGETS) + ("rkvm failure / skip detail",)]
rows += [(n,) + tuple(cell(t, n) for t, _ in TARGETS) + (note(n),) for n in names]
ncol = len(rows[0])
w = [max(len(r[i]) for r in rows) for i in range(ncol)]
sep = "  ".join("=" * x for x in w)
fmt = lambda r: "  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip()
counts = {}
for t, _ in TARGETS:
    c = {"pass": 0, "fail": 0, "skip": 0}
    for r, _ in res[t].values():
        c[r] += 1
    counts[t] = c
totals = ";\n".join(
    f"{label} {counts[t]['pass']} pass, {counts[t]['fail']} fail, {counts[t]['skip']} skip"
    for t, label in TARGETS)
explain = open(out).read().split(".. explanation-start")[1] if os.path.exists(out) and \
    ".. explanation-start" in open(out).read() else "\n"
with open(out, "w") as f:
    f.write(f""".. SPDX-License-Identifier: GPL-2.0

===============================================
KVM selftest conformance (``make conformance``)
===============================================

``make conformance`` builds the Linux kernel's own KVM selftests
(``tools/testing/selftests/kvm``, arm64, cross-compiled and static) from the cached kernel
source, packs them into the initramfs under ``/kvm-selftests`` and boots the emulated
host four times with the same kernel and the same binaries, on the VHE host and on the
nVHE host (``id_aa64mmfr1.vh=0``):

* **KVM**: the in-kernel KVM of the test kernel;
* **rkvm**: ``kvm-arm.mode=none`` and ``rkvm.ko`` loaded, which registers ``/dev/kvm``
  (the selftests open ``/dev/kvm``, a compile-time path).

Each program runs with a {ctimeout} s timeout. Exit status 0 is a pass, 4 (``KSFT_SKIP``)
a skip, anything else a failure (124/143: killed by the timeout). The per-test console
output is in ``out/logs/conformance-<target>.log`` (``conformance-log`` lines hold the
first lines of a failed assertion or the tail of a failing/skipping test's output). The
emulated host runs under TCG, so timeouts of long-running performance tests say little
about either hypervisor. ``make check`` does not run this (it takes about half an hour).

Totals ({len(names)} programs):
{totals}.

{sep}
{fmt(rows[0])}
{sep}
""")
    for r in rows[1:]:
        f.write(fmt(r) + "\n")
    f.write(sep + "\n\n.. explanation-start" + explain)
print(f"[rkvm] conformance: " + ", ".join(f"{t} {counts[t]}" for t, _ in TARGETS) + f"; wrote {out}")
EOF
