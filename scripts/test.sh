#!/usr/bin/env bash
# Runs every test: unit, integration (libvirt test driver), browser (headless
# chromium) and end-to-end on real libvirtd + QEMU guests. Installs what it needs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/install-pkgs.sh" --test
cd "$ROOT"
npx tsc -p tsconfig.json --noEmit
exec npx vitest run "$@"
