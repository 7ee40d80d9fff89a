#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The arm64 QEMU userspace of the emulated host: Debian bookworm's qemu-system-arm 7.2
# (arm64) and the shared libraries it loads, packed as a gzip'd newc cpio that
# run-hosts.sh appends to the host's initramfs (the kernel unpacks concatenated archives).
# See Documentation/qemu.rst.
#
#   build-qemu-userspace.sh           build if needed; prints the cpio's path on stdout
#
# The package set is Depends-closure of qemu-system-arm as apt resolves it for arm64 in
# bookworm (+ bookworm-security), with a private apt state (an empty dpkg status, arm64
# only, no backports), so the host's own packages and QEMU 10 never enter. The cpio holds
# /usr/bin/qemu-system-aarch64, the libraries of its ELF dependency closure and the dynamic
# loader; nothing else is needed for `-M virt -kernel ... -nodefaults` (no firmware, no
# option ROMs, no keymaps). It is cached under $RKVM_CACHE/qemu-userspace/<key>/, the key
# being the hash of every package=version of the set and of this script.
source "$(dirname "$0")/common.sh"

RKVM_QEMU_PKG=qemu-system-arm
# Bookworm's 7.2, whatever its current point release (the archive replaces them).
RKVM_QEMU_VERSION_RE='^1:7\.2\+dfsg-7\+deb12u[0-9]+'
security_mirror=${RKVM_DEBIAN_SECURITY_MIRROR:-${RKVM_DEBIAN_MIRROR%/debian}/debian-security}

apt_dir=$RKVM_CACHE/apt-bookworm-arm64
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
touch "$apt_dir/status"
cat > "$apt_dir/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $RKVM_DEBIAN_MIRROR bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $security_mirror bookworm-security main
EOS
aopts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
       -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
       -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
       -o Dir::Cache="$apt_dir/cache" -o APT::Architecture=arm64 -o APT::Architectures=arm64
       -o APT::Install-Recommends=false -o APT::Sandbox::User=root -q)

refresh_lists() { apt-get "${aopts[@]}" update >"$apt_dir/update.log" 2>&1 ||
	{ tail -5 "$apt_dir/update.log" >&2; die "apt-get update (bookworm arm64) failed"; }; }

# "package=version" of every package the install would unpack, sorted.
resolve() {
	apt-get "${aopts[@]}" -s install "$RKVM_QEMU_PKG" 2>/dev/null |
		sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1=\2/p' | sort
}

# Offline with the lists of the last run (a warm build needs no network); fetch them
# when missing or when they no longer give a 7.2 of QEMU. The resolution is kept until
# the lists change (apt's solver takes seconds; this runs before every host boot).
lists_id() { ls -l --time-style=+%s "$apt_dir/lists" 2>/dev/null | md5sum | cut -c1-12; }
[ -n "$(ls "$apt_dir/lists" 2>/dev/null | grep -v partial)" ] || refresh_lists
resolved=$apt_dir/resolved-$(lists_id)
if [ -s "$resolved" ]; then
	set_list=$(cat "$resolved")
else
	set_list=$(resolve)
fi
qver=$(grep "^$RKVM_QEMU_PKG=" <<<"$set_list" | cut -d= -f2 || true)
if ! [[ "$qver" =~ $RKVM_QEMU_VERSION_RE ]]; then
	refresh_lists
	set_list=$(resolve)
	qver=$(grep "^$RKVM_QEMU_PKG=" <<<"$set_list" | cut -d= -f2 || true)
	[[ "$qver" =~ $RKVM_QEMU_VERSION_RE ]] ||
		die "bookworm offers $RKVM_QEMU_PKG '${qver:-none}' for arm64, expected 7.2+dfsg-7+deb12u*"
fi
rm -f "$apt_dir"/resolved-*
echo "$set_list" > "$apt_dir/resolved-$(lists_id)"

key=$( { echo "$set_list"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
outdir=$RKVM_CACHE/qemu-userspace/qemu-${qver#1:}-$key
cpio=$outdir/qemu.cpio.gz
if [ -f "$cpio" ]; then
	echo "$cpio"
	exit 0
fi

log "building the arm64 QEMU userspace ($RKVM_QEMU_PKG $qver, $(wc -l <<<"$set_list") packages)"
debs=$apt_dir/debs
mkdir -p "$debs"
fetch() { (cd "$debs" && apt-get "${aopts[@]}" download $set_list) >"$apt_dir/download.log" 2>&1; }
# A point release can vanish from the mirror between runs: refresh the lists once.
if ! fetch; then
	refresh_lists
	fetch || { tail -5 "$apt_dir/download.log" >&2; die "apt-get download failed"; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pv in $set_list; do
	p=${pv%%=*} v=${pv#*=}
	# apt names the file <pkg>_<version with ':' as %3a>_<arch>.deb.
	f=$(ls "$debs/${p}_${v/:/%3a}_"*.deb 2>/dev/null | head -1)
	[ -n "$f" ] || die "no .deb for $pv in $debs"
	dpkg-deb -x "$f" "$tmp/tree"
done

# The ELF closure of the QEMU binary, resolved in the unpacked tree the way the loader
# will resolve it (Debian's multiarch library folders, no ld.so.cache).
root=$tmp/root
libdirs=(lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu)
install -D -m 0755 "$tmp/tree/usr/bin/qemu-system-aarch64" "$root/usr/bin/qemu-system-aarch64"
interp=$(readelf -l "$root/usr/bin/qemu-system-aarch64" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
[ "$interp" = /lib/ld-linux-aarch64.so.1 ] || die "unexpected ELF interpreter '$interp'"
queue=("$root/usr/bin/qemu-system-aarch64")
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
	elf=${queue[0]}; queue=("${queue[@]:1}")
	for so in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		[ -z "${seen[$so]:-}" ] || continue
		seen[$so]=1
		found=
		for d in "${libdirs[@]}"; do
			if [ -e "$tmp/tree/$d/$so" ]; then found=$d/$so; break; fi
		done
		[ -n "$found" ] || die "$so (needed by ${elf##*/}) is in no package of the set"
		# Keep the soname as the file the loader opens (dereferenced).
		install -D -m 0755 "$(readlink -f "$tmp/tree/$found")" "$root/$found"
		queue+=("$root/$found")
	done
done
# The loader itself: /lib/ld-linux-aarch64.so.1 is a link into the multiarch folder.
install -D -m 0755 "$(readlink -f "$tmp/tree$interp")" "$root$interp"
# What went in, for whoever wonders which QEMU the host runs.
mkdir -p "$root/usr/share/rkvm" && echo "$set_list" > "$root/usr/share/rkvm/qemu-packages"

mkdir -p "$outdir"
(cd "$root" && find . | sort | cpio -o -H newc --quiet --owner=0:0 | gzip -6) > "$cpio.tmp"
mv "$cpio.tmp" "$cpio"
log "QEMU userspace: $cpio ($(du -k "$cpio" | cut -f1) KiB, ${#seen[@]} libraries)"
echo "$cpio"
