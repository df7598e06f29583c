#!/usr/bin/env bash
# peer-key.sh — the authorized_keys line that lets a peer node's kvm-ferry in, and nothing more.
#
# Usage: scripts/peer-key.sh [--manager HOST:PORT] [--vnc-ports MIN-MAX] [--config PATH]
#                            [--root DIR] [--install FILE] PUBKEY_FILE
#
#   PUBKEY_FILE   the peer's public key (its peers[].sshKeyFile + .pub), one line
#   --manager     where this node's manager listens, as the peer's peers[].managerHost:
#                 managerPort name it (default 127.0.0.1:8080): the only tunnel besides VNC;
#                 repeat it when peers reach the manager at more than one address
#   --vnc-ports   the VNC ports a console may be tunnelled to on 127.0.0.1 (default
#                 5900-5999: libvirt's autoport start; one permitopen per port)
#   --config      this node's kvm-ferry config, for the image/data dirs (default /etc/kvm-ferry/config.yaml)
#   --root        where kvm-ferry is installed (default: this script's checkout)
#   --install     add the line to FILE (e.g. /root/.ssh/authorized_keys), replacing any
#                 line with the same key; without it the line is printed
#
# The line: restrict (no pty, no agent/X11 forwarding, no ~/.ssh/rc), port-forwarding
# re-enabled but limited by permitopen, and command= forcing kvm-ferry-peer-shell, which
# runs only the argv kvm-ferry's own steps send (README "Peer shell").
set -euo pipefail

die() { echo "peer-key.sh: $*" >&2; exit 1; }

managers=()
vnc=5900-5999
config=/etc/kvm-ferry/config.yaml
root=$(cd "$(dirname "$0")/.." && pwd)
install=
while [ $# -gt 0 ]; do
  case $1 in
    --manager) managers+=("${2:?}"); shift 2 ;;
    --vnc-ports) vnc=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    --root) root=${2:?}; shift 2 ;;
    --install) install=${2:?}; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || die "give exactly one public key file (see the usage at the top of this script)"
pub=$1

[ ${#managers[@]} -gt 0 ] || managers=(127.0.0.1:8080)
for m in "${managers[@]}"; do [[ $m =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]] || die "--manager must be HOST:PORT, got '$m'"; done
[[ $vnc =~ ^([0-9]{1,5})-([0-9]{1,5})$ ]] || die "--vnc-ports must be MIN-MAX, got '$vnc'"
vmin=${BASH_REMATCH[1]} vmax=${BASH_REMATCH[2]}
(( vmin <= vmax && vmax <= 65535 && vmax - vmin < 1000 )) || die "--vnc-ports $vnc is not a range of at most 1000 ports"
# These go inside command="…": no quote, backslash or space that could end or extend it.
for p in "$config" "$root"; do [[ $p =~ ^/[A-Za-z0-9_./-]+$ ]] || die "'$p' must be an absolute path of plain characters"; done
[ -f "$root/dist/src/peer-shell/main.js" ] || die "$root/dist/src/peer-shell/main.js is missing; build kvm-ferry first"

[ -r "$pub" ] || die "cannot read $pub"
[ "$(grep -c . "$pub")" -eq 1 ] || die "$pub must hold exactly one key line"
read -r ktype kblob kcomment <"$pub" || true
[[ $ktype =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))$ ]] || die "$pub is not a plain public key (type '$ktype'; options are not accepted)"
[[ $kblob =~ ^[A-Za-z0-9+/]+=*$ ]] || die "$pub has a malformed key"
ssh-keygen -l -f "$pub" >/dev/null 2>&1 || die "ssh-keygen does not accept $pub as a public key"
kcomment=${kcomment//[^A-Za-z0-9@._-]/_}

opens=
for m in "${managers[@]}"; do opens+="permitopen=\"$m\","; done
for ((p = vmin; p <= vmax; p++)); do opens+="permitopen=\"127.0.0.1:$p\","; done
line="restrict,port-forwarding,${opens}command=\"/usr/bin/node $root/dist/src/peer-shell/main.js --config $config\" $ktype $kblob${kcomment:+ $kcomment}"

if [ -z "$install" ]; then
  printf '%s\n' "$line"
  exit 0
fi
tmp=$(mktemp "$install.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# Any earlier line for this key (restricted or not) goes: one key, one line.
if [ -f "$install" ]; then grep -vF " $ktype $kblob" "$install" | grep -vE "^$ktype $kblob( |$)" >"$tmp" || true; fi
printf '%s\n' "$line" >>"$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$install"
trap - EXIT
echo "peer-key.sh: installed the restricted line for $ktype …${kblob: -8} in $install" >&2
