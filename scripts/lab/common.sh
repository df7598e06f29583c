# shellcheck shell=bash disable=SC2034 # constants are used by the other lab files
# scripts/lab/common.sh — names, paths and helpers shared by the lab commands.
# Sourced by scripts/lab.sh (which sets -euo pipefail); defines, runs nothing.

# Runtime records (PIDs, "this lab is up") live in /run so a reboot forgets them;
# node state (configs, keys, private dirs bound into the nodes) in /var/lib.
# KFLAB_INSTANCE (empty, or 2 … 9) lets several labs run side by side: every
# global name (namespaces, bridge, host veth, subnets, state dirs) is derived
# from it. Empty gives the original names: kflab-*, 10.77.0.0/24, /run/kvm-ferry-lab.
LAB_INSTANCE=${KFLAB_INSTANCE:-}
if [[ -n $LAB_INSTANCE && ! $LAB_INSTANCE =~ ^[2-9]$ ]]; then
	printf 'lab: ERROR: KFLAB_INSTANCE must be empty or one digit 2 … 9 (got "%s")\n' "$LAB_INSTANCE" >&2
	exit 1
fi
readonly LAB_INSTANCE
LAB_IDX=${LAB_INSTANCE:-1}
# Meshed by invite/join unless KFLAB_JOIN=0 (see scripts/lab.sh).
export KFLAB_JOIN=${KFLAB_JOIN:-1}
readonly NS_PREFIX=kflab$LAB_INSTANCE
readonly LAB_RUN=/run/kvm-ferry-lab$LAB_INSTANCE
readonly LAB_STATE=/var/lib/kvm-ferry-lab$LAB_INSTANCE
readonly LAB_KEY=$LAB_STATE/id_ed25519
readonly LAB_KNOWN_HOSTS=$LAB_STATE/known_hosts
# libvirt's QEMU capability cache as last probed by a lab node: survives down
# (it is a cache) and saves every later up a 5-20 s probe. Shared by instances.
readonly LAB_CAPS_SEED=/var/cache/kvm-ferry/lab-qemu-capabilities
# The bridge lives in its own "switch" namespace, not in the root namespace: the
# root namespace's firewall, br_netfilter and routing (and the host's own test
# VMs) are then neither touched by nor able to disturb the lab. The root
# namespace only gets one veth ("uplink") with 10.77.0.1 so tests and curl can
# reach the nodes' managers directly.
readonly SW_NS=$NS_PREFIX-sw
readonly BRIDGE=${NS_PREFIX}0
readonly HOST_IF=$NS_PREFIX-host
readonly LAB_NET=10.$((76 + LAB_IDX)).0
readonly HOST_ADDR=$LAB_NET.1
# --nat NODE: that node sits in PRIV_NET behind a router namespace (NAT_NS) whose
# public leg is NAT_PUBLIC_ADDR on the bridge; OpenVPN's tunnel is VPN_NET.0/24.
readonly NAT_NS=$NS_PREFIX-nat
readonly NAT_PUBLIC_ADDR=$LAB_NET.254
readonly PRIV_NET=192.168.$((76 + LAB_IDX))
readonly VPN_NET=10.$((176 + LAB_IDX)).0
readonly VPN_PORT=1194
readonly MAX_NODES=5
readonly LETTERS=(a b c d e)
readonly MANAGER_PORT=8080
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$LAB_DIR/../.." && pwd)
readonly LAB_DIR PROJECT_DIR
# Daemons started inside a node get a clean environment: whatever the caller
# (vitest, a developer shell) has exported — LIBVIRT_DEFAULT_URI, SSH_AUTH_SOCK —
# must not leak into a node's libvirtd or sshd.
readonly CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)

log() { printf 'lab: %s\n' "$*" >&2; }
die() {
	printf 'lab: ERROR: %s\n' "$*" >&2
	exit 1
}

# lab-a → a, kflab-a, 10.77.0.11; node index i (1-based) → lab-<letter i>.
node_name() { printf 'lab-%s' "${LETTERS[$(($1 - 1))]}"; }
node_letter() { printf '%s' "${1#lab-}"; }
node_ns() { printf '%s-%s' "$NS_PREFIX" "$(node_letter "$1")"; }
# The node behind NAT (lab.sh up --nat NODE), recorded by up; empty if none.
nat_node() { if [[ -s $LAB_RUN/nat ]]; then cat "$LAB_RUN/nat"; fi; }
is_nat_node() { [[ -n $1 && $(nat_node) == "$1" ]]; }
# Its veth end on the bridge (switch namespace), or on the NAT router for the NAT node.
node_port() { if is_nat_node "$1"; then printf 'lan0'; else printf 'port-%s' "$(node_letter "$1")"; fi; }
node_port_ns() { if is_nat_node "$1"; then printf '%s' "$NAT_NS"; else printf '%s' "$SW_NS"; fi; }
node_index() {
	local l i
	l=$(node_letter "$1")
	for i in "${!LETTERS[@]}"; do [[ ${LETTERS[$i]} == "$l" ]] && { echo $((i + 1)); return 0; }; done
	return 1
}
node_addr() {
	local net=$LAB_NET
	is_nat_node "$1" && net=$PRIV_NET
	printf '%s.%d' "$net" $((10 + $(node_index "$1")))
}
# Tunnel address (see scripts/vpn-certs.sh: server .1, the k-th client .(11+k)), from up's record.
node_vpn_addr() { awk -v n="$1" '$1 == n { print $2 }' "$LAB_STATE/vpn/addresses" 2>/dev/null; }
# How other nodes and the root namespace reach a node's manager.
node_url_addr() { if is_nat_node "$1"; then printf '%s' "$NAT_PUBLIC_ADDR"; else node_addr "$1"; fi; }
node_state() { printf '%s/%s' "$LAB_STATE" "$1"; }

# Nodes of the lab that is (or was partly) up: from the record, else from the
# namespaces that exist (a crashed `up` leaves namespaces but maybe no record).
lab_nodes() {
	if [[ -s $LAB_RUN/nodes ]]; then
		cat "$LAB_RUN/nodes"
	else
		ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NS_PREFIX-\\([a-e]\\)\$/lab-\\1/p" | sort
	fi
}

require_node() {
	[[ $1 =~ ^lab-[a-e]$ ]] || die "unknown node \"$1\" (nodes are lab-a … lab-e)"
	ip netns list 2>/dev/null | grep -qx "$(node_ns "$1")\( .*\)\?" || die "node $1 is not up (scripts/lab.sh up)"
}

# Alive = exists and is not a zombie. PID 1 here is not a real init and reaps
# orphans late, so a killed daemon can linger as a zombie that `kill -0` still finds.
pid_alive() {
	[[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}
read_pid() { if [[ -s $1 ]]; then tr -dc 0-9 <"$1"; fi; }

# The long-lived process holding a node's mount+UTS namespaces (it sits in the
# node's network namespace too). Every command enters the node through it.
holder_pid() {
	local p
	p=$(read_pid "$LAB_RUN/$1.holder.pid")
	pid_alive "$p" || return 1
	echo "$p"
}

# in_node NODE CMD… — run CMD inside the node (mount, UTS and network
# namespaces), keeping the caller's environment (used by `exec`).
in_node() {
	local node=$1 p
	shift
	p=$(holder_pid "$node") || die "node $node has no namespace holder (is the lab up?)"
	nsenter -t "$p" -m -u -n -- "$@"
}

# in_node_clean NODE CMD… — the same with a clean environment (daemons).
in_node_clean() {
	local node=$1
	shift
	in_node "$node" "${CLEAN_ENV[@]}" "$@"
}

# in_node_quiet NODE CMD… — a probe: clean environment, CMD's stderr dropped
# (but not ours: a dead holder is still reported).
in_node_quiet() {
	local node=$1 p
	shift
	p=$(holder_pid "$node") || die "node $node has no namespace holder"
	nsenter -t "$p" -m -u -n -- "${CLEAN_ENV[@]}" "$@" 2>/dev/null
}

# Kill PIDs politely, then for real; silent about the already dead.
kill_pids() {
	local p alive=() i
	for p in "$@"; do pid_alive "$p" && alive+=("$p"); done
	((${#alive[@]})) || return 0
	kill -TERM "${alive[@]}" 2>/dev/null || true
	for i in $(seq 1 30); do
		local left=()
		for p in "${alive[@]}"; do pid_alive "$p" && left+=("$p"); done
		((${#left[@]})) || return 0
		sleep 0.1
	done
	kill -KILL "${alive[@]}" 2>/dev/null || true
}

# wait_until SECONDS WHAT CMD… — poll CMD every 0.1 s (its stdout is dropped;
# probes silence their own expected errors, so a die() inside one is seen).
wait_until() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null && return 0
		sleep 0.1
	done
	die "timed out after ${secs}s waiting for $what"
}

# elapsed_s START_NS — seconds since START_NS ($(date +%s%N)), one decimal.
elapsed_s() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
