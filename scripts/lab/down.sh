# shellcheck shell=bash
# scripts/lab/down.sh — `lab.sh down` and `lab.sh status`. Sourced after common.sh.

# Stop one node: guests through its own libvirtd first (so libvirt restores
# labels and forgets them cleanly), then the daemons we started, then whatever
# still lives in the node's network namespace (QEMU, ssh sessions, the holder).
stop_node() {
	local node=$1 ns S dom p pids
	ns=$(node_ns "$node")
	S=$(node_state "$node")
	if holder_pid "$node" >/dev/null && [[ -S $S/run/libvirt/libvirt-sock ]]; then
		while IFS= read -r dom; do
			[[ -n $dom ]] || continue
			timeout 30 nsenter -t "$(holder_pid "$node")" -m -u -n -- "${CLEAN_ENV[@]}" \
				virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || log "$node: could not destroy $dom; killing its QEMU"
		done < <(timeout 15 nsenter -t "$(holder_pid "$node")" -m -u -n -- "${CLEAN_ENV[@]}" \
			virsh -c qemu:///system list --name 2>/dev/null || true)
	fi
	pids=()
	for p in manager sshd libvirtd virtlogd; do
		pids+=("$(read_pid "$LAB_RUN/$node.$p.pid")")
	done
	kill_pids "${pids[@]}"
	# Everything left in the node's network namespace is ours (started inside it).
	if ip netns list | grep -q "^$ns\b"; then
		mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
		kill_pids "${pids[@]}"
		ip netns del "$ns" 2>/dev/null || true
	fi
	# The holder may have died before its network namespace was set (crashed up).
	kill_pids "$(read_pid "$LAB_RUN/$node.holder.pid")"
}

lab_down() {
	local quiet=${1:-} node started d any=0
	started=$(date +%s%N)
	[[ $(id -u) == 0 ]] || die "the lab needs root"
	mapfile -t nodes < <(
		lab_nodes
		ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NS_PREFIX-\\([a-e]\\)\$/lab-\\1/p"
	)
	for node in $(printf '%s\n' "${nodes[@]}" | sort -u); do
		[[ -n $node ]] || continue
		any=1
		stop_node "$node"
	done
	if ip netns list | grep -q "^$NAT_NS\b"; then
		any=1
		ip netns del "$NAT_NS"
	fi
	if ip netns list | grep -q "^$SW_NS\b"; then
		any=1
		ip netns del "$SW_NS"
	fi
	# Normally gone with its peer in the switch namespace.
	ip link del "$HOST_IF" 2>/dev/null && any=1
	if [[ -f $LAB_RUN/created-dirs ]]; then
		# Another lab instance still bind-mounts over these (e.g. /var/lib/kvm-ferry);
		# removing a mount point detaches its mounts in every namespace, which would
		# pull that lab's node directories from under its running guests.
		if ip netns list 2>/dev/null | awk '{print $1}' | grep -qE '^kflab[2-9]?-'; then
			log "leaving $(tr '\n' ' ' <"$LAB_RUN/created-dirs")in place: another lab instance is up"
		else
			while IFS= read -r d; do rmdir "$d" 2>/dev/null || true; done <"$LAB_RUN/created-dirs"
		fi
	fi
	# Nothing from the root namespace is ever mounted below the state dir (the
	# nodes bind it elsewhere, in namespaces that died with their processes);
	# refuse to rm -rf if that ever stops being true.
	if grep -qE " ($LAB_STATE|$LAB_RUN)[/ ]" /proc/self/mounts; then
		die "something is mounted below $LAB_STATE or $LAB_RUN; unmount it, then run down again"
	fi
	[[ -e $LAB_RUN || -e $LAB_STATE ]] && any=1
	rm -rf "$LAB_RUN" "$LAB_STATE"
	[[ -n $quiet ]] && return 0
	if ((any)); then
		log "down in $(elapsed_s "$started") s"
	else
		log "the lab is not up; nothing to do"
	fi
}

lab_status() {
	local node S p d state any=0
	for node in $(lab_nodes); do
		any=1
		S=$(node_state "$node")
		state=""
		if p=$(holder_pid "$node"); then state="holder=$p"; else state="holder=DEAD"; fi
		for d in virtlogd libvirtd sshd manager; do
			p=$(read_pid "$LAB_RUN/$node.$d.pid")
			[[ -z $p ]] && { [[ $d == manager ]] || state+=" $d=-"; continue; }
			if pid_alive "$p"; then state+=" $d=$p"; else state+=" $d=DEAD"; fi
		done
		local pns
		pns=$(node_port_ns "$node")
		if ip -n "$pns" link show "$(node_port "$node")" 2>/dev/null | grep -q 'state DOWN'; then state+=" link=CUT"; fi
		if tc -n "$pns" qdisc show dev "$(node_port "$node")" 2>/dev/null | grep -q tbf; then
			state+=" shaped=$(tc -n "$pns" qdisc show dev "$(node_port "$node")" | sed -n 's/.* rate \([^ ]*\).*/\1/p')"
		fi
		is_nat_node "$node" && state+=" nat=$NAT_PUBLIC_ADDR"
		[[ -n $(node_vpn_addr "$node") ]] && state+=" vpn=$(node_vpn_addr "$node")"
		printf '%s\t%s\thttp://%s:%d/\t%s\n' "$node" "$(node_addr "$node")" "$(node_url_addr "$node")" "$MANAGER_PORT" "$state"
	done
	((any)) || { log "the lab is down"; return 0; }
	[[ -f $LAB_RUN/up ]] || log "the lab is only partly up (run scripts/lab.sh down, then up)"
}
