#!/usr/bin/env bash
# Installs what kvm-ferry needs on Debian 12, as root, and is safe to run again:
# each step checks first and only acts when something is missing or stale.
#   scripts/install-pkgs.sh           packages, npm ci, build, libvirt daemons
#   scripts/install-pkgs.sh --test    also what the test suite needs (chromium, guest image tools, QEMU 10 for busy guests)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "install-pkgs: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf 'install-pkgs: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "install-pkgs: run as root (it installs Debian packages and starts libvirtd)." >&2
  exit 1
fi

PKGS=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils virtinst osinfo-db
  openssh-server openssh-client openvpn easy-rsa nginx apache2-utils
  iproute2 iptables procps psmisc ca-certificates openssl sqlite3
  build-essential python3 pkg-config
)
TEST_PKGS=(systemd curl chromium busybox-static cpio syslinux syslinux-common isolinux mtools dosfstools xorriso ovmf strace)
[ "$WITH_TEST" = 1 ] && PKGS+=("${TEST_PKGS[@]}")

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#PKGS[@]} present"
fi

# Debian 12 ships Node 18; the native addons and tools here need 20.19 or newer.
if ! command -v node >/dev/null; then
  echo "install-pkgs: Node.js is not installed; kvm-ferry needs Node.js >= 20.19 (e.g. from NodeSource)." >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "install-pkgs: Node.js $(node --version) is too old; kvm-ferry needs >= 20.19." >&2
  exit 1
fi

# npm ci only when the lockfile changed since the last successful install.
cd "$ROOT"
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.kvm-ferry-lock.sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] \
   && [ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] \
   && [ -f node_modules/@unraid/libvirt/build/Release/libvirt.node ]; then
  say "npm dependencies: up to date"
else
  say "npm ci (builds the better-sqlite3 and libvirt native addons)"
  npm ci --no-audit --no-fund
  # npm 11 may skip install scripts it was not told to allow; fail here, not at first use.
  for addon in node_modules/better-sqlite3/build/Release/better_sqlite3.node node_modules/@unraid/libvirt/build/Release/libvirt.node; do
    [ -f "$addon" ] || { echo "install-pkgs: native addon $addon was not built; check npm's install-scripts policy (package.json allowScripts)." >&2; exit 1; }
  done
  echo "$lock_sum" > "$stamp"
fi

# The stats daemon's libvirt statistics addon (native/domstats.c); rebuilt only when its source changed.
bash scripts/build-native.sh
say "statistics addon: ready"

# Rebuild only when a TypeScript source is newer than the last build.
build_stamp=dist/.build-stamp
if [ -f "$build_stamp" ] && [ -z "$(find src stats-daemon tsconfig.json -newer "$build_stamp" -name '*.ts' -o -newer "$build_stamp" -name tsconfig.json 2>/dev/null | head -1)" ]; then
  say "TypeScript build: up to date"
else
  say "building TypeScript"
  npx tsc -p tsconfig.json
  touch "$build_stamp"
fi

# Without udev (containers) /dev/kvm stays root:root 0600. libvirtd then finds KVM
# "not available" to the qemu user on every call and re-probes QEMU's capabilities
# each time (seconds per call, minutes under load). Debian's udev rule sets root:kvm 0660.
if [ -c /dev/kvm ] && [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ] && getent group kvm >/dev/null; then
  say "giving /dev/kvm the group and mode udev would (root:kvm 0660)"
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi

# libvirt daemons: systemd where it runs, started directly where it does not (containers).
if [ -d /run/systemd/system ]; then
  for unit in virtlogd.socket libvirtd.service; do
    if ! systemctl is-active --quiet "$unit"; then say "starting $unit"; systemctl enable --now "$unit"; fi
  done
else
  if ! pgrep -x virtlogd >/dev/null; then say "starting virtlogd"; virtlogd -d; fi
  # Pinned to one core: the QEMU capabilities cache records the probing core's CPUID
  # leaf 0x1f, and a libvirtd on another core would re-probe QEMU (seconds).
  if ! pgrep -x libvirtd >/dev/null; then say "starting libvirtd"; taskset -c 0 libvirtd -d; fi
fi
for _ in $(seq 1 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  echo "install-pkgs: libvirtd does not answer on qemu:///system; see /var/log/libvirt/ or 'journalctl -u libvirtd'." >&2
  exit 1
fi
say "libvirtd: answering on qemu:///system"

if [ "$WITH_TEST" = 1 ]; then
  "$ROOT/scripts/build-guest.sh"
  # QEMU 10 (bookworm-backports, unpacked under /opt) for the busy guests of the convergence tests.
  "$ROOT/scripts/install-qemu-backports.sh"
fi
say "done"
