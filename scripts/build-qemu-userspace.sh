#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The arm64 QEMU userspaces of the emulated host, packed as gzip'd newc cpios that
# run-hosts.sh appends to the host's initramfs (the kernel unpacks concatenated archives).
# See Documentation/qemu.rst and Documentation/interop.rst.
#
#   build-qemu-userspace.sh [7.2]     Debian bookworm's qemu-system-arm 7.2 at
#                                     /usr/bin/qemu-system-aarch64
#   build-qemu-userspace.sh 10        Debian bookworm-backports' qemu-system-arm 10.0 under
#                                     /opt/qemu10, run as /usr/bin/qemu10-system-aarch64
#
# Builds if needed and prints the cpio's path on stdout.
#
# The package set is the Depends closure of qemu-system-arm as apt resolves it for arm64
# with a private apt state (an empty dpkg status, arm64 only), so the host's own packages
# and its QEMU never enter: for 7.2 from bookworm (+ bookworm-security) alone, for 10 as a
# user installs it, `apt-get install -t bookworm-backports qemu-system-arm`, plus ipxe-qemu
# (a Recommends) for the virtio-net-pci option ROM that QEMU 10 loads for the NIC. The cpio
# holds the QEMU binary, the libraries of its ELF dependency closure and the dynamic loader;
# nothing else is needed for `-M virt -kernel ...` (no firmware, no keymaps). It is cached
# under $RKVM_CACHE/qemu-userspace/<version>-<key>/, the key being the hash of every
# package=version of the set and of this script.
#
# Both live in one initramfs side by side: 7.2 at the standard paths, 10 under its own
# prefix with its own loader and library folders, started through a wrapper that runs that
# loader with --library-path (the two library sets differ: 10 takes systemd's, libbpf and
# libelf from backports), so neither ever loads the other's libraries.
source "$(dirname "$0")/common.sh"

variant=${1:-7.2}
security_mirror=${RKVM_DEBIAN_SECURITY_MIRROR:-${RKVM_DEBIAN_MIRROR%/debian}/debian-security}
RKVM_QEMU_PKG=qemu-system-arm
case "$variant" in
7.2)
	# Bookworm's 7.2, whatever its current point release (the archive replaces them).
	qemu_version_re='^1:7\.2\+dfsg-7\+deb12u[0-9]+'
	suites=(bookworm bookworm-security)
	install_args=("$RKVM_QEMU_PKG")
	apt_dir=$RKVM_CACHE/apt-bookworm-arm64
	prefix=        # the binary at /usr/bin/qemu-system-aarch64, libraries at the usual places
	;;
10)
	# Bookworm-backports' 10.0 (e.g. 1:10.0.2+ds-2+deb13u1~bpo12+1).
	qemu_version_re='^1:10\.0\.[0-9]+\+ds-.*~bpo12\+[0-9]+$'
	suites=(bookworm bookworm-security bookworm-backports)
	install_args=(-t bookworm-backports "$RKVM_QEMU_PKG" ipxe-qemu)
	apt_dir=$RKVM_CACHE/apt-bookworm-backports-arm64
	prefix=/opt/qemu10
	wrapper=/usr/bin/qemu10-system-aarch64
	;;
*) die "unknown QEMU userspace '$variant' (7.2 or 10)" ;;
esac

mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
touch "$apt_dir/status"
for suite in "${suites[@]}"; do
	case "$suite" in *-security) m=$security_mirror ;; *) m=$RKVM_DEBIAN_MIRROR ;; esac
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m $suite main"
done > "$apt_dir/sources.list"
aopts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
       -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
       -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
       -o Dir::Cache="$apt_dir/cache" -o APT::Architecture=arm64 -o APT::Architectures=arm64
       -o APT::Install-Recommends=false -o APT::Sandbox::User=root -q)

refresh_lists() { apt-get "${aopts[@]}" update >"$apt_dir/update.log" 2>&1 ||
	{ tail -5 "$apt_dir/update.log" >&2; die "apt-get update (${suites[*]}, arm64) failed"; }; }

# "package=version" of every package the install would unpack, sorted.
resolve() {
	apt-get "${aopts[@]}" -s install "${install_args[@]}" 2>/dev/null |
		sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1=\2/p' | sort
}

# Offline with the lists of the last run (a warm build needs no network); fetch them
# when missing or when they no longer give the QEMU version asked for. The resolution is kept until
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
if ! [[ "$qver" =~ $qemu_version_re ]]; then
	refresh_lists
	set_list=$(resolve)
	qver=$(grep "^$RKVM_QEMU_PKG=" <<<"$set_list" | cut -d= -f2 || true)
	[[ "$qver" =~ $qemu_version_re ]] ||
		die "${suites[*]} offer $RKVM_QEMU_PKG '${qver:-none}' for arm64, expected $variant ($qemu_version_re)"
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

log "building the arm64 QEMU $variant userspace ($RKVM_QEMU_PKG $qver, $(wc -l <<<"$set_list") packages)"
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
qemu=$root$prefix/usr/bin/qemu-system-aarch64
install -D -m 0755 "$tmp/tree/usr/bin/qemu-system-aarch64" "$qemu"
interp=$(readelf -l "$qemu" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
[ "$interp" = /lib/ld-linux-aarch64.so.1 ] || die "unexpected ELF interpreter '$interp'"
queue=("$qemu")
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
		install -D -m 0755 "$(readlink -f "$tmp/tree/$found")" "$root$prefix/$found"
		queue+=("$root$prefix/$found")
	done
done
# The loader itself: /lib/ld-linux-aarch64.so.1 is a link into the multiarch folder.
install -D -m 0755 "$(readlink -f "$tmp/tree$interp")" "$root$prefix$interp"
# What went in, for whoever wonders which QEMU the host runs.
mkdir -p "$root$prefix/usr/share/rkvm" && echo "$set_list" > "$root$prefix/usr/share/rkvm/qemu-packages"
if [ -n "$prefix" ]; then
	# QEMU 10's virtio-net-pci loads its option ROM (efi-virtio.rom) even for a -kernel
	# boot; Debian's QEMU finds it in /usr/lib/ipxe/qemu, here under the prefix (-L).
	rom=usr/lib/ipxe/qemu/efi-virtio.rom
	[ -f "$tmp/tree/$rom" ] || die "no $rom in ipxe-qemu"
	install -D -m 0644 "$tmp/tree/$rom" "$root$prefix/$rom"
	# The prefix's own loader with its own library folders: nothing from / is loaded.
	install -D -m 0755 /dev/stdin "$root$wrapper" <<EOW
#!/bin/sh
# Debian bookworm-backports' QEMU $qver (rkvm's build-qemu-userspace.sh 10).
exec $prefix$interp --library-path $prefix/${libdirs[0]}:$prefix/${libdirs[1]} \\
	$prefix/usr/bin/qemu-system-aarch64 -L $prefix/${rom%/*} "\$@"
EOW
fi

mkdir -p "$outdir"
(cd "$root" && find . | sort | cpio -o -H newc --quiet --owner=0:0 | gzip -6) > "$cpio.tmp"
mv "$cpio.tmp" "$cpio"
log "QEMU $variant userspace: $cpio ($(du -k "$cpio" | cut -f1) KiB, ${#seen[@]} libraries)"
echo "$cpio"
