#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The rules for rkvm's nVHE EL2 object (arch/arm64/hyp/nvhe/hyp.o), checked by Kbuild
# before rkvm.ko is linked (Documentation/nvhe.rst, "How the EL2 image is built"):
#
#   1. no undefined symbols: EL2 code never calls into the kernel;
#   2. code and data only in the EL2 sections (.rkvm.hyp.text, .rkvm.hyp.idmap.text): no
#      alternatives, jump tables or other kernel-patched sections;
#   3. relocations in EL2 sections only PC-relative, and only against symbols of the EL2
#      sections: the code works at any address, in particular at its hyp VA and, for the
#      idmap page, at its physical address;
#   4. the idmap section is exactly one page (it must run from one physical page).
#
#   check-hyp-object.sh OBJECT        check OBJECT (READELF, NM: tools to use)
#   check-hyp-object.sh --self-test   show that each rule rejects an object breaking it
set -euo pipefail

READELF=${READELF:-llvm-readelf-19}
NM=${NM:-llvm-nm-19}
HYP_SECTIONS='^\.rkvm\.hyp\.(idmap\.)?text$'
# AArch64 relocation types computed relative to the place (PC), none absolute.
PCREL='^R_AARCH64_(PREL(16|32|64)|PLT32|LD_PREL_LO19|ADR_PREL_LO21|ADR_PREL_PG_HI21(_NC)?|ADD_ABS_LO12_NC|LDST(8|16|32|64|128)_ABS_LO12_NC|TSTBR14|CONDBR19|JUMP26|CALL26)$'

check() {
	local obj=$1 errors=0
	fail() { echo "check-hyp-object: $obj: $*" >&2; errors=$((errors + 1)); }

	local undef
	undef=$("$NM" -u "$obj" | awk '{print $NF}' | tr '\n' ' ')
	[ -z "$undef" ] || fail "undefined symbols (EL2 code must not call the kernel): $undef"

	# Sections with contents: only the EL2 ones (and their relocations).
	local name type flags size idmap_size=
	while read -r name type flags size; do
		if [[ $name =~ $HYP_SECTIONS ]]; then
			[ "$name" != .rkvm.hyp.idmap.text ] || idmap_size=$size
			continue
		fi
		case "$type" in RELA|REL|SYMTAB|STRTAB|NULL|NOTE|LLVM_ADDRSIG) continue ;; esac
		[[ $flags == *A* ]] || continue
		[ "$((16#$size))" -eq 0 ] || fail "section $name ($size bytes) outside the EL2 sections"
	done < <("$READELF" -SW "$obj" | sed -n 's/^ *\[ *[0-9]*\] //p' |
		awk '{ print $1, $2, ($7 ~ /^[A-Z]+$/ ? $7 : "-"), $5 }')
	[ "$((16#${idmap_size:-0}))" -eq 4096 ] ||
		fail ".rkvm.hyp.idmap.text is ${idmap_size:-missing}, not one 4096-byte page"

	# Symbols defined in EL2 sections, by index of their section.
	local -A hyp_index=()
	local idx
	while read -r idx name; do
		[[ $name =~ $HYP_SECTIONS ]] && hyp_index[$idx]=1
	done < <("$READELF" -SW "$obj" | sed -n 's/^ *\[ *\([0-9]*\)\] \([^ ]*\).*/\1 \2/p')
	local -A hyp_sym=()
	local ndx sym
	while read -r ndx sym; do
		[ -n "${hyp_index[$ndx]:-}" ] && hyp_sym[$sym]=1
	done < <("$READELF" -sW "$obj" | awk '$1 ~ /^[0-9]+:$/ && NF >= 8 { print $7, $8 } $1 ~ /^[0-9]+:$/ && NF == 7 && $4 == "SECTION" { print $7, "" }')
	for idx in "${!hyp_index[@]}"; do
		name=$("$READELF" -SW "$obj" | sed -n "s/^ *\[ *$idx\] \([^ ]*\).*/\1/p")
		hyp_sym[$name]=1
	done

	# Relocations applied to EL2 sections.
	local section= rtype target
	while read -r line; do
		if [[ $line =~ ^Relocation\ section\ \'\.rela?(.*)\' ]]; then
			section=${BASH_REMATCH[1]}
			continue
		fi
		[[ $section =~ $HYP_SECTIONS ]] || continue
		[[ $line =~ ^[0-9a-f]+\  ]] || continue
		rtype=$(awk '{print $3}' <<<"$line")
		target=$(awk '{print $5}' <<<"$line")
		[[ $rtype =~ $PCREL ]] || fail "$section: relocation $rtype is not PC-relative ($line)"
		[ -n "${hyp_sym[$target]:-}" ] || fail "$section: relocation against $target, outside the EL2 sections"
	done < <("$READELF" -rW "$obj")

	[ "$errors" -eq 0 ]
}

self_test() {
	local dir cc=${CC:-clang-19} status=0
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' RETURN
	asm() { printf '%s\n' "$2" | "$cc" --target=aarch64-linux-gnu -c -x assembler - -o "$dir/$1.o"; }
	local page='.pushsection .rkvm.hyp.idmap.text, "ax"
	.balign 4096
	ret
	.balign 4096
	.popsection'
	asm good "$page
	.pushsection .rkvm.hyp.text, \"ax\"
1:	adr x0, 1b
	b 1b
	.popsection"
	asm undef "$page
	.pushsection .rkvm.hyp.text, \"ax\"
	bl printk
	.popsection"
	asm abs "$page
	.pushsection .rkvm.hyp.text, \"ax\"
	.quad 1f
1:	ret
	.popsection"
	asm outside "$page
	.pushsection .rkvm.hyp.text, \"ax\"
	adrp x0, kdata
	.popsection
	.data
kdata:	.quad 0"
	asm bigidmap ".pushsection .rkvm.hyp.idmap.text, \"ax\"
	.balign 4096
	.skip 8192
	.popsection"
	check "$dir/good.o" || { echo "self-test: a good object was rejected" >&2; status=1; }
	local bad
	for bad in undef abs outside bigidmap; do
		if check "$dir/$bad.o" 2>&1 | sed "s/^/  $bad: /" >&2; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			echo "self-test: the '$bad' object was accepted" >&2
			status=1
		fi
	done
	[ "$status" -ne 0 ] || echo "check-hyp-object: self-test passed (1 good object accepted, 4 bad ones rejected)"
	return "$status"
}

case "${1:?usage: check-hyp-object.sh OBJECT | --self-test}" in
--self-test) self_test ;;
*) check "$1" ;;
esac
