#!/usr/bin/env bash
# Unpacks QEMU 10 from Debian's bookworm-backports into /opt/kvm-ferry-qemu10 (not installed:
# the system's QEMU 7.2 and its packages stay as they are) with a wrapper that libvirt can
# use as a VM's <emulator>. Safe to run again: a stat when the wrapper already answers 10.x.
#
# Why the tests need it: these machines run guests emulated (TCG), and before QEMU 9.0 a live
# memory copy of an emulated guest loses writes (kvm-ferry then pauses the guest for its copy,
# src/domain/convergence/memory-copy.ts). The pre-copy policies (safe's downtime steps and
# auto-converge, fast-finish's post-copy) can only be exercised on busy guests with a QEMU
# that copies them correctly: test/e2e/convergence and bench/convergence run those guests
# with this emulator. Usage: scripts/install-qemu-backports.sh [DIR]
set -euo pipefail

DIR=${1:-/opt/kvm-ferry-qemu10}
WRAPPER=$DIR/bin/qemu-system-x86_64
SUITE=bookworm-backports
# The emulator and the modules it may load: a module of another build aborts QEMU (it
# would fall back to the system's 7.2 modules for any it does not find in its own dir).
DEBS=(qemu-system-x86 qemu-system-common qemu-system-data qemu-system-gui qemu-system-modules-spice qemu-system-modules-opengl qemu-block-extra)

say() { printf 'install-qemu-backports: %s\n' "$*"; }

# The wrapper's QEMU version ("10.0.2"), empty when it does not run.
wrapper_version() { "$WRAPPER" --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([^ ]*\).*/\1/p'; }

if [ -x "$WRAPPER" ] && [[ $(wrapper_version) == 10.* ]]; then
  say "QEMU $(wrapper_version) ready at $WRAPPER"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/debs"
printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian bookworm main\n' "$SUITE" >"$work/sources.list"
# A private apt state: the system's sources and package lists are not touched.
apt_opts=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
say "fetching ${DEBS[*]} from $SUITE"
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$work/debs" && apt-get "${apt_opts[@]}" download "${DEBS[@]/%//$SUITE}" >/dev/null)

rm -rf "$DIR.new"
mkdir -p "$DIR.new/bin"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$DIR.new"; done
missing=$(ldd "$DIR.new/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
[ -z "$missing" ] || { echo "install-qemu-backports: QEMU 10 needs libraries this system lacks: $missing" >&2; exit 1; }
cat >"$DIR.new/bin/qemu-system-x86_64" <<EOF
#!/bin/sh
# QEMU 10 from $SUITE, unpacked (scripts/install-qemu-backports.sh): its own modules and
# firmware; libvirt runs this as the VM's <emulator> and probes it like any QEMU.
export QEMU_MODULE_DIR=$DIR/usr/lib/x86_64-linux-gnu/qemu
exec $DIR/usr/bin/qemu-system-x86_64 -L $DIR/usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu "\$@"
EOF
chmod 0755 "$DIR.new/bin/qemu-system-x86_64"
# The paths baked into the wrapper are the final ones: check it from there.
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
[[ $(wrapper_version) == 10.* ]] || { echo "install-qemu-backports: $WRAPPER does not run" >&2; exit 1; }
say "QEMU $(wrapper_version) ready at $WRAPPER"
