#!/usr/bin/env bash
# build-guest.sh — build a tiny, real Linux guest for kvm-ferry end-to-end tests.
#
# Usage: scripts/build-guest.sh [--variant busy] [OUTDIR]      (default: /var/cache/kvm-ferry/guest, busy: …/guest-busy)
#        (busy variant kernel args: ferry_dirty=<MiB> rewrites memory, ferry_write=1 writes fsync'd blocks to /dev/vda)
#
# Everything comes from Debian packages (no network downloads besides apt), so
# the result is reproducible-ish and works on an offline mirror. Produces:
#
#   vmlinuz      Debian's stock amd64 kernel, extracted from the .deb (not installed)
#   initrd.img   gzip'd newc cpio: static busybox + an /init that prints
#                "kvm-ferry-counter <N> uptime <secs>" once a second to ttyS0;
#                kernel arg ferry_busy=1 also starts a background CPU-burning loop
#   guest.img    ~32 MiB raw FAT "superfloppy" with syslinux: BIOS-boots the above
#   guest.qcow2  the same disk converted to qcow2
#   guest.iso    isolinux CD (also isohybrid) booting the same kernel+initrd
#   manifest.txt kernel package/version and sha256 of every artifact
#
# The guest needs no disk driver at all: everything runs from the initramfs, so
# any of the boot media (disk, cdrom, direct kernel boot) behaves identically.
#
# Guest RAM: the stock Debian kernel alone reserves ~57 MiB, so the guest needs
# at least 84 MiB (measured with kernel 6.1.0-56, TCG); 83 MiB panics "System is
# deadlocked on memory", 64-72 MiB hangs silently in firmware/syslinux with no
# kernel output at all. Use 96 MiB or more in tests.
#
# libvirt's dynamic_ownership chowns these files to libvirt-qemu while a guest
# uses them (and never chowns read-only media such as the ISO back). Tests
# that need a *writable* disk should boot a qcow2 overlay
# (qemu-img create -f qcow2 -F qcow2 -b OUTDIR/guest.qcow2 ...) rather than
# the shared artifact itself.
#
# Idempotent: if every artifact exists and is newer than this script, it exits
# at once. A build happens in a staging dir inside OUTDIR and is moved into
# place with rename(2); manifest.txt is removed first and written last, so it
# acts as the "build complete" marker (a half-finished move is never trusted).

set -euo pipefail

readonly DEFAULT_OUTDIR=/var/cache/kvm-ferry/guest
readonly IMG_SIZE_KIB=32768 # 32 MiB: kernel (~8 MiB) + initrd (~1 MiB) + slack
readonly ARTIFACTS=(vmlinuz initrd.img guest.img guest.qcow2 guest.iso manifest.txt)
# Debian packages this script needs on the build host (not in the guest).
readonly BUILD_DEPS=(busybox-static cpio syslinux syslinux-common isolinux mtools
	dosfstools xorriso qemu-utils)
# Kernel command line shared by every boot path. console=ttyS0 puts kernel
# messages and /dev/console on the first 16550 UART, which libvirt's
# <serial> device is wired to.
KERNEL_ARGS="console=ttyS0"

log() { printf 'build-guest: %s\n' "$*"; }
die() {
	printf 'build-guest: ERROR: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
esac
# --variant busy: a separate image (own OUTDIR, so the default guest and its cache are
# untouched) whose init also honours ferry_dirty=<MiB>: a small static C program rewrites
# that much non-zero memory in a loop (zero pages cost QEMU nothing). Its kernel command
# line carries ferry_dirty=${FERRY_DIRTY_MIB:-64}.
# It also honours ferry_write=1: init loads virtio_blk (and the virtio modules it needs, from
# the same kernel package) and a second static program writes numbered 4 KiB blocks to the
# first virtio disk (/dev/vda), block N at byte N*4096, each a repeated line
# "kvm-ferry-block <N, 10 digits>\n" (27 bytes); after each block's fdatasync it prints
# "kvm-ferry-ack <N>" on the serial console, so a test knows exactly which blocks the
# guest was promised are on disk. It stops (printing "kvm-ferry-write-full") at the end of
# the disk. ferry_write_ms=<ms> sets the pause between blocks (default 20: ~50 writes/s).
VARIANT=default
if [[ "${1:-}" == --variant ]]; then
	[[ "${2:-}" == busy ]] || die "--variant: only \"busy\" exists"
	VARIANT=busy
	shift 2
fi
[[ $# -le 1 ]] || {
	usage >&2
	exit 2
}

if [[ $VARIANT == busy ]]; then
	OUTDIR=${1:-/var/cache/kvm-ferry/guest-busy}
	DIRTY_MIB=${FERRY_DIRTY_MIB:-64}
	[[ $DIRTY_MIB =~ ^[0-9]{1,4}$ ]] || die "FERRY_DIRTY_MIB must be a whole number of MiB"
	KERNEL_ARGS="$KERNEL_ARGS ferry_dirty=$DIRTY_MIB"
else
	OUTDIR=${1:-$DEFAULT_OUTDIR}
fi
# Absolute path of this script, so the freshness check does not depend on cwd.
SCRIPT=$(readlink -f -- "${BASH_SOURCE[0]}")

# --- fast path -------------------------------------------------------------
# Only stat(2) calls here: this must stay well under a second because test
# suites call it unconditionally before every run.
all_fresh() {
	local f
	for f in "${ARTIFACTS[@]}"; do
		[[ -s "$OUTDIR/$f" && "$OUTDIR/$f" -nt "$SCRIPT" ]] || return 1
	done
}
if all_fresh; then
	log "guest already built in $OUTDIR"
	exit 0
fi

# --- build-host dependencies ------------------------------------------------
is_installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}
missing=()
for p in "${BUILD_DEPS[@]}"; do
	is_installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
	[[ $EUID -eq 0 ]] || die "missing packages (${missing[*]}) and not root to install them"
	log "installing missing packages: ${missing[*]}"
	# A fresh machine may have no package lists yet; refresh only on failure to
	# keep the common path offline-friendly and fast.
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \
		"${missing[@]}"; then
		log "install failed, running apt-get update and retrying"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \
			"${missing[@]}"
	fi
fi

# Where Debian puts the boot loader bits (stable since syslinux 6 / bookworm).
readonly ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
readonly ISOHDPFX_BIN=/usr/lib/ISOLINUX/isohdpfx.bin
readonly LDLINUX_C32=/usr/lib/syslinux/modules/bios/ldlinux.c32
readonly BUSYBOX=/bin/busybox
for f in "$ISOLINUX_BIN" "$ISOHDPFX_BIN" "$LDLINUX_C32" "$BUSYBOX"; do
	[[ -f "$f" ]] || die "$f not found (package layout changed?)"
done
# busybox must be static: the initramfs contains no libc.
# (`file` is optional; "static-pie linked" also counts.)
if command -v file >/dev/null; then
	[[ "$(LC_ALL=C file -b "$BUSYBOX")" == *static* ]] ||
		die "$BUSYBOX is not statically linked (is busybox-static installed?)"
fi

# --- staging + locking ------------------------------------------------------
mkdir -p -- "$OUTDIR"
# libvirt's qemu user (libvirt-qemu) must be able to traverse into OUTDIR for
# direct kernel boot and shared read-only media; the artifacts are not secret.
chmod 0755 -- "$OUTDIR"
# Serialise concurrent builders (parallel test workers) on one OUTDIR.
exec 9>"$OUTDIR/.lock"
flock 9
# Another builder may have finished while we waited for the lock.
if all_fresh; then
	log "guest already built in $OUTDIR (by a concurrent run)"
	exit 0
fi
# Leftovers of builds killed with SIGKILL (trap never ran); safe under the lock.
rm -rf -- "$OUTDIR"/.build.*
# Staging dir lives inside OUTDIR so the final mv is a same-filesystem rename.
STAGE=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf -- "$STAGE"' EXIT
log "building in $STAGE"

# --- kernel -----------------------------------------------------------------
# Resolve the concrete image package (e.g. linux-image-6.1.0-56-amd64) from the
# metapackage's candidate version, rather than hard-coding an ABI number that
# changes with every Debian point release / security update.
resolve_kernel_pkg() {
	apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' | head -n1
}
KPKG=$(resolve_kernel_pkg)
if [[ -z "$KPKG" ]]; then
	log "linux-image-amd64 unknown to apt, running apt-get update"
	apt-get update
	KPKG=$(resolve_kernel_pkg)
fi
[[ "$KPKG" =~ ^linux-image-[0-9][^[:space:]]*-amd64$ ]] ||
	die "could not resolve kernel package from linux-image-amd64 (got '$KPKG')"

log "downloading $KPKG (not installing it)"
mkdir "$STAGE/deb"
# APT::Sandbox::User=root: the staging dir is 0700 root, so apt's default
# unprivileged _apt download user could not write into it.
(cd "$STAGE/deb" && apt-get download -q -o APT::Sandbox::User=root "$KPKG")
KDEB=$(find "$STAGE/deb" -maxdepth 1 -name "${KPKG}_*.deb" -print -quit)
[[ -n "$KDEB" ]] || die "apt-get download produced no .deb for $KPKG"
KVERSION=$(dpkg-deb -f "$KDEB" Version)

# Only /boot is needed; wildcards avoid hard-coding the kernel release string.
mkdir "$STAGE/kernel"
dpkg-deb --fsys-tarfile "$KDEB" |
	tar -x -C "$STAGE/kernel" --wildcards './boot/vmlinuz-*' './boot/config-*'
KIMAGE=$(find "$STAGE/kernel/boot" -name 'vmlinuz-*' -print -quit)
KCONFIG=$(find "$STAGE/kernel/boot" -name 'config-*' -print -quit)
[[ -n "$KIMAGE" && -n "$KCONFIG" ]] || die "no vmlinuz/config in $KDEB"
KRELEASE=${KIMAGE##*/vmlinuz-}

# The guest loads no modules (the initramfs has none), so everything it needs
# must be built in. Checking the shipped config turns a silent boot hang on a
# future kernel into a clear build error.
for opt in CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_DEVTMPFS CONFIG_PROC_FS \
	CONFIG_SYSFS CONFIG_SERIAL_8250 CONFIG_SERIAL_8250_CONSOLE CONFIG_BINFMT_SCRIPT; do
	grep -qx "$opt=y" "$KCONFIG" || die "$KPKG lacks built-in $opt"
done
install -m 0644 "$KIMAGE" "$STAGE/vmlinuz"
log "kernel $KRELEASE ($KPKG $KVERSION)"

# --- initramfs --------------------------------------------------------------
log "creating initramfs from static busybox"
ROOT="$STAGE/initramfs"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root}
chmod 1777 "$ROOT/tmp"
install -m 0755 "$BUSYBOX" "$ROOT/bin/busybox"
# Create every applet symlink at build time, so /init can use plain command
# names from its first line without a runtime `busybox --install`.
while IFS= read -r applet; do
	[[ "$applet" == bin/busybox || -e "$ROOT/$applet" ]] && continue
	ln -s /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)
# The kernel opens /dev/console for init's stdio *before* /init can mount
# devtmpfs. Debian kernels carry a built-in initramfs with that node, but make
# our own when allowed (root, CAP_MKNOD) so we do not depend on it.
mknod -m 0600 "$ROOT/dev/console" c 5 1 2>/dev/null ||
	log "note: cannot mknod /dev/console (unprivileged?), relying on kernel's built-in one"

cat >"$ROOT/init" <<'INIT'
#!/bin/sh
# kvm-ferry test guest init (PID 1). It must never exit: PID 1 exiting panics
# the kernel. Prints "kvm-ferry-counter <N> uptime <secs>" once per second.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Re-open stdio on the real console now that devtmpfs is mounted. Guarded: a
# failed redirection on `exec` would terminate this shell (and panic).
if [ -c /dev/console ]; then
	exec </dev/console >/dev/console 2>&1
fi

# Keep kernel printk from splicing into the middle of our counter lines on the
# serial port (test harnesses parse them); dmesg is still in the ring buffer.
dmesg -n 1 2>/dev/null

# fd 3 = first UART, if it really exists (opening a phantom 8250 port gives
# EIO). Probe in a subshell so a failure cannot kill PID 1.
serial=0
if (: >/dev/ttyS0) 2>/dev/null; then
	exec 3>/dev/ttyS0
	serial=1
fi
# Also write to /dev/console, unless /dev/console *is* ttyS0 (console=ttyS0):
# in /proc/consoles the "C" flag marks the device behind /dev/console.
console=1
if [ "$serial" = 1 ] && awk '$1 == "ttyS0" && /\(.*C.*\)/ { f = 1 } END { exit !f }' /proc/consoles 2>/dev/null; then
	console=0
fi

say() {
	[ "$serial" = 1 ] && echo "$*" >&3
	[ "$console" = 1 ] && echo "$*"
	return 0
}

# Kernel args like ferry_busy=1 reach init as environment variables as well,
# but /proc/cmdline is the authoritative source.
busy=0
case " $(cat /proc/cmdline) " in
*" ferry_busy=1 "*) busy=1 ;;
esac
if [ "$busy" = 1 ]; then
	# Burn one vCPU (for CPU-stats tests); the counter keeps running beside it.
	while :; do :; done &
fi
say "kvm-ferry-guest init started kernel $(uname -r) busy=$busy"
# @DIRTY@

n=1
while :; do
	read -r up _ </proc/uptime
	say "kvm-ferry-counter $n uptime $up"
	n=$((n + 1))
	sleep 1
done
INIT
chmod 0755 "$ROOT/init"

if [[ $VARIANT == busy ]]; then
	command -v gcc >/dev/null || die "the busy variant needs gcc (and libc6-dev for static linking)"
	cat >"$STAGE/ferry-dirty.c" <<'CSRC'
/* Rewrites N MiB of memory forever with non-zero data: one word per 4 KiB page per round
 * dirties every page; the value changes each round so no page is ever zero or repeated. */
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	/* Lowest priority (busybox has no nice applet): PID 1's serial counter keeps its beat. */
	if (nice(19) == -1) return 2;
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, n = mib << 20;
	volatile unsigned long *m = malloc(n);
	if (!m) return 1;
	for (unsigned long round = 1;; round++)
		for (size_t i = 0; i < n / sizeof *m; i += 4096 / sizeof *m) m[i] = round * 2654435761UL + i;
}
CSRC
	gcc -O2 -static -o "$ROOT/bin/ferry-dirty" "$STAGE/ferry-dirty.c"
	cat >"$STAGE/ferry-write.c" <<'CSRC'
/* Writes numbered 4 KiB blocks to a disk, block N at N*4096 (block 0 untouched), and prints
 * "kvm-ferry-ack N" only after fdatasync returned for it: every acknowledged number must be
 * on the disk, wherever the VM runs by then. Usage: ferry-write DEV PAUSE_MS */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc < 3) return 2;
	int fd = -1;
	for (int i = 0; i < 300 && fd < 0; i++) { /* udev-less: wait for the device node */
		fd = open(argv[1], O_RDWR);
		if (fd < 0) usleep(100000);
	}
	if (fd < 0) { printf("kvm-ferry-write-error open %s\n", argv[1]); fflush(stdout); return 1; }
	unsigned long long size = 0;
	if (ioctl(fd, BLKGETSIZE64, &size) != 0) { printf("kvm-ferry-write-error size\n"); fflush(stdout); return 1; }
	useconds_t pause = (useconds_t)strtoul(argv[2], NULL, 10) * 1000;
	char block[4096], line[28];
	for (unsigned long n = 1; (n + 1) * 4096 <= size; n++) {
		snprintf(line, sizeof line, "kvm-ferry-block %010lu\n", n); /* 27 bytes: the number must fit whole */
		for (size_t o = 0; o < sizeof block; o++) block[o] = line[o % 27];
		if (pwrite(fd, block, sizeof block, (off_t)n * 4096) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
			printf("kvm-ferry-write-error block %lu\n", n); fflush(stdout); return 1;
		}
		printf("kvm-ferry-ack %lu\n", n);
		fflush(stdout);
		if (pause) usleep(pause);
	}
	printf("kvm-ferry-write-full\n");
	fflush(stdout);
	for (;;) sleep(3600);
}
CSRC
	gcc -O2 -static -o "$ROOT/bin/ferry-write" "$STAGE/ferry-write.c"
	# virtio_blk and what it needs, in load order (the image has no modprobe/depmod data:
	# busybox insmod loads them one by one). The check below fails the build if a future
	# kernel adds a dependency this list lacks, instead of a guest that silently has no disk.
	VIRTIO_MODS=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk)
	mkdir -p "$STAGE/mods" "$ROOT/lib/modules"
	dpkg-deb --fsys-tarfile "$KDEB" |
		tar -x -C "$STAGE/mods" --wildcards "./lib/modules/$KRELEASE/kernel/drivers/virtio/*" \
			"./lib/modules/$KRELEASE/kernel/drivers/block/virtio_blk.ko*"
	for m in "${VIRTIO_MODS[@]}"; do
		ko=$(find "$STAGE/mods" -name "$m.ko" -print -quit)
		[[ -n $ko ]] || die "$KPKG has no uncompressed $m.ko (compressed modules need another insmod)"
		deps=$(grep -a -o 'depends=[^[:cntrl:]]*' "$ko" | head -n1 | cut -d= -f2)
		for d in ${deps//,/ }; do
			[[ -e $ROOT/lib/modules/$d.ko ]] || die "$m.ko needs $d, which is not loaded before it"
		done
		install -m 0644 "$ko" "$ROOT/lib/modules/$m.ko"
	done
	printf '%s\n' "${VIRTIO_MODS[@]}" >"$ROOT/lib/modules/order"
	# Started from init when the kernel command line asks for them (ferry-dirty nices itself to 19).
	cat >"$STAGE/busy-init.sh" <<'BUSY'
dirty=$(sed -n "s/.*ferry_dirty=\([0-9]*\).*/\1/p" /proc/cmdline)
if [ -n "$dirty" ]; then ferry-dirty "$dirty" & say "kvm-ferry-guest dirtying $dirty MiB"; fi
case " $(cat /proc/cmdline) " in
*" ferry_write=1 "*)
	# Oopses (levels 0-3) on the console: a writer that dies after a move must say why.
	dmesg -n 4 2>/dev/null
	for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" || say "kvm-ferry-guest insmod $m failed"; done
	wms=$(sed -n "s/.*ferry_write_ms=\([0-9]*\).*/\1/p" /proc/cmdline)
	say "kvm-ferry-guest writing blocks to /dev/vda every ${wms:-20} ms"
	if [ "$serial" = 1 ]; then ferry-write /dev/vda "${wms:-20}" >&3 2>&1 & else ferry-write /dev/vda "${wms:-20}" & fi
	;;
esac
BUSY
	sed -i -e "/^# @DIRTY@\$/r $STAGE/busy-init.sh" -e '/^# @DIRTY@$/d' "$ROOT/init"
else
	sed -i '/^# @DIRTY@$/d' "$ROOT/init"
fi

# Sorted, owner-, inode- and mtime-independent archive so rebuilds from the same
# packages give a byte-identical initrd (gzip -n drops the gzip timestamp).
# (The disk images are not byte-reproducible: FAT volume id and timestamps.)
find "$ROOT" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
(cd "$ROOT" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
	gzip -9 -n >"$STAGE/initrd.img"
chmod 0644 "$STAGE/initrd.img"

# --- syslinux raw disk ------------------------------------------------------
log "creating ${IMG_SIZE_KIB} KiB FAT disk with syslinux"
# mtools otherwise rejects some geometries of plain image files.
export MTOOLS_SKIP_CHECK=1
# Unpartitioned FAT ("superfloppy"): SeaBIOS just runs sector 0, which
# `syslinux --install` turns into its FAT boot sector. No partition table,
# so no loop devices or offsets are needed anywhere.
mkfs.fat -C -n KVMFERRY "$STAGE/guest.img" "$IMG_SIZE_KIB" >/dev/null
syslinux --install "$STAGE/guest.img"
# SERIAL: syslinux's own (empty) prompt goes to the UART too; TIMEOUT 0 +
# PROMPT 0 boot the default label immediately.
cat >"$STAGE/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT ferry
PROMPT 0
TIMEOUT 0
LABEL ferry
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $KERNEL_ARGS
EOF
mcopy -o -i "$STAGE/guest.img" "$STAGE/vmlinuz" "$STAGE/initrd.img" \
	"$STAGE/syslinux.cfg" ::/
chmod 0644 "$STAGE/guest.img"

log "converting to qcow2"
qemu-img convert -f raw -O qcow2 "$STAGE/guest.img" "$STAGE/guest.qcow2"
chmod 0644 "$STAGE/guest.qcow2"

# --- isolinux ISO -----------------------------------------------------------
log "creating isolinux ISO"
ISOROOT="$STAGE/iso"
mkdir -p "$ISOROOT/isolinux"
cp "$ISOLINUX_BIN" "$LDLINUX_C32" "$ISOROOT/isolinux/"
cp "$STAGE/vmlinuz" "$STAGE/initrd.img" "$ISOROOT/"
# Same config syntax (isolinux is syslinux); paths are relative to the ISO root.
cp "$STAGE/syslinux.cfg" "$ISOROOT/isolinux/isolinux.cfg"
# -isohybrid-mbr additionally makes the ISO bootable when attached as a disk
# (harmless for CD boot, handy if a test hands the ISO to --import by mistake).
# xorriso always prints a banner on stderr; keep it only if something fails.
if ! xorriso -as mkisofs -quiet -o "$STAGE/guest.iso" -R -J -V KVMFERRY \
	-isohybrid-mbr "$ISOHDPFX_BIN" \
	-b isolinux/isolinux.bin -c isolinux/boot.cat \
	-no-emul-boot -boot-load-size 4 -boot-info-table \
	"$ISOROOT" 2>"$STAGE/xorriso.log"; then
	cat "$STAGE/xorriso.log" >&2
	die "xorriso failed"
fi
chmod 0644 "$STAGE/guest.iso"

# --- manifest ---------------------------------------------------------------
log "writing manifest"
{
	echo "# kvm-ferry test guest, built by scripts/build-guest.sh"
	echo "# verify: grep -E '^[0-9a-f]{64}  ' manifest.txt | sha256sum -c"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel_package: $KPKG"
	echo "kernel_version: $KVERSION"
	echo "kernel_release: $KRELEASE"
	echo "busybox_version: $(dpkg-query -W -f='${Version}' busybox-static)"
	echo "kernel_args: $KERNEL_ARGS"
	(cd "$STAGE" && sha256sum vmlinuz initrd.img guest.img guest.qcow2 guest.iso)
} >"$STAGE/manifest.txt"
chmod 0644 "$STAGE/manifest.txt"

# --- publish ----------------------------------------------------------------
# manifest.txt is the completion marker: drop the old one first, rename the
# artifacts (atomic per file), and only then rename the new manifest in.
rm -f -- "$OUTDIR/manifest.txt"
for f in "${ARTIFACTS[@]}"; do
	[[ "$f" == manifest.txt ]] && continue
	mv -f -- "$STAGE/$f" "$OUTDIR/$f"
done
mv -f -- "$STAGE/manifest.txt" "$OUTDIR/manifest.txt"

log "done: guest built in $OUTDIR"
(cd "$OUTDIR" && ls -l -- "${ARTIFACTS[@]}")
