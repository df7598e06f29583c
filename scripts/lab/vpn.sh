# shellcheck shell=bash
# scripts/lab/vpn.sh — `lab.sh up N --nat NODE`: one node in a private subnet
# behind a NAT router namespace, and an OpenVPN tunnel joining every node.
#
#   kflab-sw bridge ── port-nat ── wan 10.77.0.254 [kflab-nat: MASQUERADE] lan0 192.168.77.1
#                                                                            │ veth
#                                                   kflab-X: eth0 192.168.77.(10+i), default via .1
#
# The router forwards only what the NAT node starts (conntrack) plus one port
# forward: the root namespace (the admin's browser / the tests) may reach the
# NAT node's manager at 10.77.0.254:8080. The other nodes have no route to
# 192.168.77.0/24 at all; they reach the NAT node only through the tunnel.
# Sourced after common.sh.

readonly VPN_DIR_IN_NODE=/var/lib/kvm-ferry/vpn # = $S/kvm-ferry/vpn, private to the node
readonly VPN_DEV=kfvpn0

net_add_nat_router() {
	local nat=$1 ipt=(ip netns exec "$NAT_NS" iptables -w 5) t missing=()
	for t in openvpn openssl iptables; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
	((${#missing[@]} == 0)) || die "--nat needs ${missing[*]} (run scripts/install-pkgs.sh)"
	[[ -c /dev/net/tun ]] || die "--nat needs /dev/net/tun for OpenVPN"
	ip netns add "$NAT_NS"
	ip -n "$NAT_NS" link set lo up
	ip -n "$SW_NS" link add port-nat type veth peer name wan netns "$NAT_NS"
	ip -n "$SW_NS" link set port-nat master "$BRIDGE" up
	ip -n "$NAT_NS" addr add "$NAT_PUBLIC_ADDR/24" dev wan
	ip -n "$NAT_NS" link set wan up
	ip netns exec "$NAT_NS" sysctl -qw net.ipv4.ip_forward=1
	"${ipt[@]}" -t nat -A POSTROUTING -o wan -j MASQUERADE
	"${ipt[@]}" -P FORWARD DROP
	"${ipt[@]}" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	"${ipt[@]}" -A FORWARD -i lan0 -o wan -j ACCEPT
	# The admin's port forward (root namespace only) to the NAT node's manager.
	"${ipt[@]}" -t nat -A PREROUTING -i wan -s "$HOST_ADDR" -p tcp --dport "$MANAGER_PORT" \
		-j DNAT --to-destination "$(node_addr "$nat"):$MANAGER_PORT"
	"${ipt[@]}" -A FORWARD -i wan -o lan0 -s "$HOST_ADDR" -d "$(node_addr "$nat")" -p tcp --dport "$MANAGER_PORT" -j ACCEPT
}

net_add_nat_node() {
	local node=$1 ns
	ns=$(node_ns "$node")
	ip netns add "$ns"
	ip -n "$NAT_NS" link add lan0 type veth peer name eth0 netns "$ns"
	ip -n "$NAT_NS" addr add "$PRIV_NET.1/24" dev lan0
	ip -n "$NAT_NS" link set lan0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$(node_addr "$node")/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$PRIV_NET.1"
}

# The OpenVPN server runs on the first node that is not behind NAT.
vpn_server_node() {
	local node
	for node in "${NODES[@]}"; do is_nat_node "$node" || { echo "$node"; return 0; }; done
	return 1
}

# Certificates and configs for every node (scripts/vpn-certs.sh), copied into each node's private dir.
lab_vpn_setup() {
	local server node clients=()
	server=$(vpn_server_node) || die "--nat needs at least one node that is not behind NAT"
	for node in "${NODES[@]}"; do [[ $node == "$server" ]] || clients+=("$node"); done
	"$PROJECT_DIR/scripts/vpn-certs.sh" --out "$LAB_STATE/vpn" --server "$server=$(node_addr "$server")" \
		--net "$VPN_NET.0" --port "$VPN_PORT" --dev "$VPN_DEV" --install-dir "$VPN_DIR_IN_NODE" "${clients[@]}" 2>/dev/null
	for node in "${NODES[@]}"; do
		mkdir -p "$(node_state "$node")/kvm-ferry/vpn"
		cp -a "$LAB_STATE/vpn/$node/." "$(node_state "$node")/kvm-ferry/vpn/"
	done
}

# The same argv the manager uses (src/adapters/openvpn/openvpn-args.ts), so the manager
# recognises and can stop an instance the lab started.
vpn_start_node() {
	in_node_clean "$1" openvpn --config "$VPN_DIR_IN_NODE/openvpn.conf" --daemon kvm-ferry-vpn \
		--writepid /run/kvm-ferry-vpn.pid --status /run/kvm-ferry-vpn.status 1 --status-version 2 \
		--log-append "$VPN_DIR_IN_NODE/openvpn.log" </dev/null >>"$(node_state "$1")/daemons.log" 2>&1
}

vpn_has_addr() { in_node_quiet "$1" ip -4 -o addr show dev "$VPN_DEV" | grep -q "inet $(node_vpn_addr "$1")/"; }

lab_vpn_start() {
	local server node t
	t=$(date +%s%N)
	server=$(vpn_server_node)
	vpn_start_node "$server"
	wait_until 10 "OpenVPN on $server (see $(node_state "$server")/kvm-ferry/vpn/openvpn.log)" vpn_has_addr "$server"
	for node in "${NODES[@]}"; do [[ $node == "$server" ]] || vpn_start_node "$node"; done
	for node in "${NODES[@]}"; do
		wait_until 20 "the tunnel of $node (see $(node_state "$node")/kvm-ferry/vpn/openvpn.log)" vpn_has_addr "$node"
	done
	log "OpenVPN tunnel $VPN_NET.0/24 up in $(elapsed_s "$t") s (server $server)"
}
