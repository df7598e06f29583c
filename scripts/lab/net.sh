# shellcheck shell=bash
# scripts/lab/net.sh — the lab's network: switch namespace with bridge kflab0,
# one veth per node, an uplink for the root namespace; shape / cut / heal.
#
#   root ns: kflab-host 10.77.0.1 ──veth── uplink ┐
#   kflab-a: eth0 10.77.0.11 ────────veth── port-a ├─ kflab0 (bridge, in ns kflab-sw)
#   kflab-b: eth0 10.77.0.12 ────────veth── port-b ┘
#
# Every veth is created from inside kflab-sw, so no lab interface name ever
# exists in the root namespace except kflab-host.

net_add_switch() {
	ip netns add "$SW_NS"
	ip -n "$SW_NS" link set lo up
	ip -n "$SW_NS" link add "$BRIDGE" type bridge
	ip -n "$SW_NS" link set "$BRIDGE" up
	ip -n "$SW_NS" link add uplink type veth peer name "$HOST_IF" netns 1
	ip -n "$SW_NS" link set uplink master "$BRIDGE" up
	ip addr add "$HOST_ADDR/24" dev "$HOST_IF"
	ip link set "$HOST_IF" up
}

net_add_node() {
	local node=$1 ns port
	if is_nat_node "$node"; then
		net_add_nat_node "$node"
		return 0
	fi
	ns=$(node_ns "$node")
	port=$(node_port "$node")
	ip netns add "$ns"
	ip -n "$SW_NS" link add "$port" type veth peer name eth0 netns "$ns"
	ip -n "$SW_NS" link set "$port" master "$BRIDGE" up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$(node_addr "$node")/24" dev eth0
	ip -n "$ns" link set eth0 up
}

# Token bucket on both ends of the node's veth (egress to the node on the
# bridge port, egress from the node on its eth0), so both directions are
# limited. This kernel has tbf and htb but no netem: no added delay or loss.
lab_shape() {
	local node=${1:-} rate=${2:-} ns port bps burst
	[[ -n $node && -n $rate ]] || die "usage: lab.sh shape NODE RATE|off   (RATE like 1gbit, 100mbit, 512kbit)"
	require_node "$node"
	ns=$(node_ns "$node")
	port=$(node_port "$node")
	local pns
	pns=$(node_port_ns "$node")
	if [[ $rate == off ]]; then
		tc -n "$pns" qdisc del dev "$port" root 2>/dev/null || true
		tc -n "$ns" qdisc del dev eth0 root 2>/dev/null || true
		log "$node: link not shaped"
		return 0
	fi
	[[ $rate =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || die "shape: RATE must be a whole number with bit, kbit, mbit or gbit (got \"$rate\")"
	case ${BASH_REMATCH[2]} in
	bit) bps=${BASH_REMATCH[1]} ;;
	kbit) bps=$((BASH_REMATCH[1] * 1000)) ;;
	mbit) bps=$((BASH_REMATCH[1] * 1000000)) ;;
	gbit) bps=$((BASH_REMATCH[1] * 1000000000)) ;;
	esac
	((bps > 0)) || die "shape: RATE must be more than 0"
	# Bucket = 10 ms worth of data (at least 4 KiB): small enough to hold the rate
	# over a migration's seconds, large enough for the kernel's timer granularity.
	burst=$((bps / 800))
	((burst >= 4096)) || burst=4096
	tc -n "$pns" qdisc replace dev "$port" root tbf rate "$rate" burst "$burst" latency 100ms
	tc -n "$ns" qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
	log "$node: link shaped to $rate each way"
}

# A cut cable: the bridge port goes down, the node's eth0 loses carrier; its
# address and routes stay, so connections hang (no reset) until heal.
lab_cut() {
	local node=${1:-}
	[[ -n $node ]] || die "usage: lab.sh cut NODE"
	require_node "$node"
	ip -n "$(node_port_ns "$node")" link set "$(node_port "$node")" down
	log "$node: link cut"
}

lab_heal() {
	local node=${1:-}
	[[ -n $node ]] || die "usage: lab.sh heal NODE"
	require_node "$node"
	ip -n "$(node_port_ns "$node")" link set "$(node_port "$node")" up
	log "$node: link restored"
}
