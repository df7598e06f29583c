#!/usr/bin/env bash
# Quick start: installs what is missing, then runs the manager in the foreground
# and the stats daemon beside it.
# Without KVM_FERRY_CONFIG (or /etc/kvm-ferry/config.yaml) it uses the embedded
# default: this node's qemu:///system, data in /var/lib/kvm-ferry, http://127.0.0.1:8080.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/install-pkgs.sh"
cd "$ROOT"
# The stats daemon (npm run stats) runs beside the manager and stops with it.
node dist/stats-daemon/main.js &
STATS_PID=$!
trap 'kill "$STATS_PID" 2>/dev/null || true' EXIT
node dist/src/main.js
