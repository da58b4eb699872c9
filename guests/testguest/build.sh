#!/usr/bin/env bash
# Build the sfmesh test guest: a BIOS-bootable raw disk (MBR -> syslinux on a
# FAT16 partition -> Debian's generic kernel + a busybox initramfs).
#
#   bash guests/testguest/build.sh OUT_DIR   ->   OUT_DIR/testguest.raw
#   bash guests/testguest/build.sh OUT_DIR VARIANT_DIR
#
# A variant (guests/agentguest) is this guest plus more: VARIANT_DIR/variant.sh
# is sourced after the settings below and may set image_name, add to
# wanted_modules and extra_packages (Debian packages fetched with the kernel),
# and define extend_root, called with the initramfs tree's path before it is
# packed.
#
# Needs no root and no loop device: the Debian packages are fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` (never installed), and
# the FAT filesystem is written inside the image file with mtools.
# Host tools: apt-get, dpkg-deb, cpio, gzip, sfdisk (fdisk), mkfs.vfat
# (dosfstools), mcopy/mdir (mtools), syslinux + syslinux-common.
# The guest's own files (init, rc.boot, ...) sit beside this script.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUT_DIR [VARIANT_DIR]" >&2
    exit 2
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# Kernel modules the guest loads: ACPI power button, NICs, disks, cdrom.
# Their dependencies are added from modules.dep.
wanted_modules=(button evdev virtio_pci virtio_net e1000 e1000e 8139cp
                virtio_blk virtio_scsi ata_piix ahci sd_mod sr_mod isofs)
mbr_bin=/usr/lib/syslinux/mbr/mbr.bin
image_name=testguest.raw
extra_packages=()
extend_root() { :; }

log() { echo "testguest: $*" >&2; }

if [ $# -eq 2 ]; then
    variant=$(cd "$2" && pwd)
    # shellcheck source=/dev/null
    source "$variant/variant.sh"
fi

for tool in apt-get apt-cache dpkg-deb cpio gzip sfdisk mkfs.vfat mcopy mdir syslinux; do
    command -v "$tool" >/dev/null || { log "missing tool: $tool"; exit 1; }
done
[ -r "$mbr_bin" ] || { log "missing $mbr_bin (package syslinux-common)"; exit 1; }

# Everything happens in a scratch folder, removed however we leave.
work=$(mktemp -d "${TMPDIR:-/tmp}/testguest-build.XXXXXX")
# shellcheck disable=SC2064  # expand $work now, on purpose
trap "rm -rf '$work'" EXIT

# --- 1. Packages --------------------------------------------------------------

# linux-image-amd64 is a meta package: find the versioned kernel it points at.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# Resolve the kernel and download both packages into $work/debs.
fetch_packages() {
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || return 1
    rm -rf "$work/debs"
    mkdir "$work/debs"
    (cd "$work/debs" && apt-get download -qq "$kpkg" busybox-static "${extra_packages[@]}")
}

mkdir -p "$work/debs"
# apt-get may warn that it downloads "unsandboxed as root" (the _apt user
# cannot enter our private scratch folder): harmless.
if ! fetch_packages; then
    # Package lists missing or stale (a removed kernel version): refresh once.
    log "download failed; running apt-get update and retrying"
    apt-get update -q
    fetch_packages
fi
kver=${kpkg#linux-image-}
log "kernel $kver"

dpkg-deb -x "$work"/debs/busybox-static_*.deb "$work/busybox"
dpkg-deb -x "$work"/debs/"$kpkg"_*.deb "$work/kernel"
busybox=$work/busybox/bin/busybox
kmods=$work/kernel/lib/modules/$kver

# --- 2. Initramfs tree ---------------------------------------------------------

root=$work/root
mkdir -p "$root"/{bin,etc/acpi/PWRF,lib/modules/"$kver"}
install -m 0755 "$busybox" "$root/bin/busybox"
install -m 0755 "$src/init" "$root/init"
install -m 0644 "$src/inittab" "$root/etc/inittab"
install -m 0755 "$src/rc.boot" "$root/etc/rc.boot"
install -m 0755 "$src/rc.shutdown" "$root/etc/rc.shutdown"
install -m 0755 "$src/udhcpc.script" "$root/etc/udhcpc.script"
install -m 0755 "$src/acpi-power" "$root/etc/acpi/PWRF/00000080"

# The package ships no modules.dep (its postinst makes one): build it over
# the whole unpacked tree with busybox's depmod, which runs on the host too.
"$busybox" depmod -b "$work/kernel" "$kver"

# Each wanted module's modules.dep line is "kernel/path/mod.ko: dep.ko ...";
# copy the module and every dependency, keeping their relative paths.
for module in "${wanted_modules[@]}"; do
    line=$(grep -E "(^|/)${module}\.ko:" "$kmods/modules.dep") ||
        { log "module $module not in $kver"; exit 1; }
    # Unquoted on purpose: split the line (colon dropped) into file names.
    for file in ${line/:/}; do
        install -D -m 0644 "$kmods/$file" "$root/lib/modules/$kver/$file"
    done
done
cp "$kmods/modules.builtin" "$kmods/modules.order" "$root/lib/modules/$kver/"
# A modules.dep for just these, so that modprobe works inside the guest.
"$busybox" depmod -b "$root" "$kver"
log "$(find "$root/lib/modules" -name '*.ko' | wc -l) modules in the initramfs"

extend_root "$root"

# No /dev/console node is needed: the kernel's built-in initramfs has one.
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9) \
    >"$work/initrd.img"

# --- 3. Disk image ---------------------------------------------------------------

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$src/syslinux.cfg" "$work/syslinux.cfg"

# One FAT16 partition at LBA 2048 (1 MiB), sized to the payload plus ~2-3
# MiB of room for ldlinux.sys/.c32 and the FAT itself, in whole MiB.
mib=$((1024 * 1024))
payload=$(($(stat -c %s "$work/vmlinuz") + $(stat -c %s "$work/initrd.img")))
part_mib=$(((payload + 2 * mib + mib - 1) / mib))
disk=$work/$image_name
truncate -s $(((part_mib + 1) * mib)) "$disk"

# MBR partition table: type 0x0e (FAT16 LBA), active (mbr.bin boots the
# active partition).
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk --quiet "$disk"

# FAT16 inside the partition: --offset in sectors, -h = hidden sectors
# (the partition start, for the BPB), size in KiB.
mkfs.vfat -F 16 -n GUESTBOOT --offset 2048 -h 2048 "$disk" $((part_mib * 1024)) >/dev/null

# mtools reaches the filesystem at a byte offset: IMAGE@@OFFSET.
export MTOOLS_SKIP_CHECK=1
mcopy -i "$disk@@1M" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/

# The mtools-based syslinux installer writes ldlinux.sys/ldlinux.c32 and the
# partition's boot sector (offset in bytes).
syslinux --offset $((2048 * 512)) --install "$disk"
mdir -a -i "$disk@@1M" ::/ldlinux.sys >/dev/null

# Boot code into the first 440 bytes of the MBR (the partition table after
# them stays).
dd if="$mbr_bin" of="$disk" bs=440 count=1 conv=notrunc status=none

# --- 4. Publish atomically ---------------------------------------------------------

# Copy next to the target (same filesystem), then rename over it: a reader
# sees either the old image or the new one, never half of one.
tmp_out=$(mktemp "$out/.$image_name.XXXXXX")
cp --sparse=always "$disk" "$tmp_out"
chmod 0644 "$tmp_out"
mv -f "$tmp_out" "$out/$image_name"
log "built $out/$image_name ($(stat -c %s "$out/$image_name") bytes;" \
    "vmlinuz $(stat -c %s "$work/vmlinuz"), initrd.img $(stat -c %s "$work/initrd.img"))"
