#!/usr/bin/env bash
# Builds native/build/kf_domstats.node, the stats daemon's libvirt statistics call
# (native/domstats.c), with the C compiler and Node's own headers: no node-gyp, no download.
# Rebuilt only when the source is newer than the addon. Needs build-essential and libvirt-dev
# (scripts/install-pkgs.sh installs both). Without the addon the daemon falls back to a kept
# virsh (README, Statistics).
set -euo pipefail
cd "$(dirname "$0")/.."
src=native/domstats.c
out=native/build/kf_domstats.node
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then exit 0; fi
node_bin=$(readlink -f "$(command -v node)")
inc=$(dirname "$(dirname "$node_bin")")/include/node
[ -f "$inc/node_api.h" ] || { echo "build-native: Node's headers are not at $inc (node_api.h); install Node.js with its headers" >&2; exit 1; }
mkdir -p native/build
cc -O2 -Wall -Wextra -Werror -fPIC -shared -I"$inc" $(pkg-config --cflags libvirt) -o "$out.tmp" "$src" $(pkg-config --libs libvirt)
mv "$out.tmp" "$out"
echo "build-native: built $out"
