#!/usr/bin/env bash
# Runs every test: unit, integration (libvirt test driver), browser (headless
# chromium) and end-to-end on real libvirtd + QEMU guests. Installs what it needs.
# Arguments are passed to vitest (e.g. --project unit) and replace the default run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/install-pkgs.sh" --test
cd "$ROOT"
npx tsc -p tsconfig.test.json
if [ "$#" -gt 0 ]; then
  exec npx vitest run --no-file-parallelism "$@"
fi
started=$(date +%s)
npx vitest run --project unit --project integration
# Guests and chromium share two cores with nothing else: one file at a time, after the fast tests.
npx vitest run --project browser --project e2e --no-file-parallelism
echo "test.sh: all tests passed in $(( $(date +%s) - started )) s"
