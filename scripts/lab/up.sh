# shellcheck shell=bash
# scripts/lab/up.sh — `lab.sh up [N] [--nat NODE] [--with-manager]`. Sourced after common.sh, net.sh, node-state.sh.

# Tools the lab needs; one message naming every missing one.
lab_require_tools() {
	local missing=() t
	for t in ip tc unshare nsenter taskset libvirtd virtlogd virsh /usr/sbin/sshd ssh ssh-keygen qemu-img curl; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing: ${missing[*]} (run scripts/install-pkgs.sh)"
	[[ $(id -u) == 0 ]] || die "the lab needs root (namespaces, bridges, libvirtd)"
}

# Is the lab fully up with N nodes? (every holder, libvirtd and sshd alive)
lab_is_up() {
	[[ -f $LAB_RUN/up ]] || return 1
	local node
	for node in $(lab_nodes); do
		holder_pid "$node" >/dev/null || return 1
		pid_alive "$(read_pid "$(node_state "$node")/run/libvirtd.pid")" || return 1
		pid_alive "$(read_pid "$(node_state "$node")/run/sshd.pid")" || return 1
	done
}

# Namespaces of one node: network (veth to the bridge), then mount+UTS held by node-init.sh.
start_node_namespaces() {
	local node=$1 S ns
	S=$(node_state "$node")
	ns=$(node_ns "$node")
	net_add_node "$node"
	rm -f "$S/ready"
	# setsid + redirected stdio: the holder must not keep the caller's terminal
	# or pipes open (vitest's execFileSync would wait for it forever).
	setsid ip netns exec "$ns" unshare --mount --uts --propagation private \
		"$LAB_DIR/node-init.sh" "$node" "$S" "$LAB_RUN" </dev/null >"$S/holder.log" 2>&1 &
	wait_until 10 "the namespaces of $node (see $S/holder.log)" test -f "$S/ready"
	holder_pid "$node" >/dev/null || die "the namespace holder of $node died (see $S/holder.log)"
}

start_node_daemons() {
	local node=$1 S
	S=$(node_state "$node")
	# virtlogd first: libvirtd hands every QEMU's stdout/stderr log to it.
	# libvirtd pinned to CPU 0: the QEMU capability cache records the host CPU's
	# CPUID, whose leaf 0x1f carries the x2APIC ID of the core libvirtd happened
	# to run on; a libvirtd on the other core finds the cache "stale" and
	# re-probes every QEMU binary (~5-10 s). Pinned, one probe serves every node.
	# QEMU is unaffected: libvirt gives each domain all online CPUs, not its own mask.
	{
		in_node_clean "$node" virtlogd -d
		in_node_clean "$node" taskset -c 0 libvirtd -d
		in_node_clean "$node" /usr/sbin/sshd -f "$S/ssh/sshd_config" -E "$S/sshd.log"
	} </dev/null >>"$S/daemons.log" 2>&1
}

libvirt_answers() { in_node_quiet "$1" virsh -q -c qemu:///system hostname; }

wait_node_daemons() {
	local node=$1 S d
	S=$(node_state "$node")
	wait_until 60 "libvirtd of $node (see $S/daemons.log)" libvirt_answers "$node"
	wait_until 10 "sshd of $node (see $S/sshd.log)" test -s "$S/run/sshd.pid"
	for d in virtlogd libvirtd sshd; do
		cp "$S/run/$d.pid" "$LAB_RUN/$node.$d.pid"
	done
}

# Make libvirtd load (or probe and write) its QEMU capability cache now, so the
# other nodes can be seeded with it and the first test does not pay for it.
warm_capabilities() {
	local node=$1 t
	t=$(date +%s%N)
	in_node_quiet "$node" timeout 120 virsh -q -c qemu:///system capabilities >/dev/null ||
		die "libvirtd of $node cannot report its capabilities (see $(node_state "$node")/log-libvirt)"
	log "QEMU capabilities of $node ready in $(elapsed_s "$t") s"
	# Keep them for the next up (a cache like the test guest: down leaves it).
	mkdir -p "$LAB_CAPS_SEED.new"
	cp -a "$(node_state "$node")/cache-libvirt/qemu/capabilities/." "$LAB_CAPS_SEED.new/"
	rm -rf "$LAB_CAPS_SEED"
	mv "$LAB_CAPS_SEED.new" "$LAB_CAPS_SEED"
}

start_manager() {
	local node=$1 S nodebin p
	S=$(node_state "$node")
	p=$(read_pid "$S/run/kvm-ferry-manager.pid")
	pid_alive "$p" && return 0
	nodebin=$(command -v node) || die "node (Node.js) is not installed"
	[[ -f $PROJECT_DIR/dist/src/main.js ]] || die "the manager is not built: run npm run build in $PROJECT_DIR"
	# The wrapper writes its own PID into the node's /run (the host's /run is
	# hidden in there), then becomes the manager (same PID).
	# shellcheck disable=SC2016 # $$, $1, $2 belong to the inner bash
	setsid nsenter -t "$(holder_pid "$node")" -m -u -n -- "${CLEAN_ENV[@]}" KVM_FERRY_CONFIG="$S/config.yaml" \
		bash -c 'echo $$ >/run/kvm-ferry-manager.pid; cd "$1"; exec "$2" dist/src/main.js' manager "$PROJECT_DIR" "$nodebin" \
		</dev/null >>"$S/manager.log" 2>&1 &
}

wait_manager() {
	local node=$1
	wait_until 60 "the manager of $node to answer /healthz (see $(node_state "$node")/manager.log)" \
		manager_answers "$node"
	cp "$(node_state "$node")/run/kvm-ferry-manager.pid" "$LAB_RUN/$node.manager.pid"
}

# Healthy manager, or a dead one (then fail at once with its log, not after 60 s).
manager_answers() {
	local node=$1 S
	S=$(node_state "$node")
	if [[ -s $S/run/kvm-ferry-manager.pid ]] && ! pid_alive "$(read_pid "$S/run/kvm-ferry-manager.pid")"; then
		tail -n 20 "$S/manager.log" >&2
		die "the manager of $node exited (log: $S/manager.log)"
	fi
	in_node_quiet "$node" curl -sf --max-time 2 "http://$(node_addr "$node"):$MANAGER_PORT/healthz"
}

lab_up() {
	local n=3 with_manager=0 a node started i want_nat=""
	for a in "$@"; do
		case $a in
		--with-manager) with_manager=1 ;;
		--nat) want_nat=next ;;
		[0-9]*) if [[ $want_nat == next ]]; then die "up: --nat needs a node name like lab-b"; fi; n=$a ;;
		lab-[a-e]) [[ $want_nat == next ]] || die "up: node name \"$a\" without --nat"; want_nat=$a ;;
		*) die "up: unknown argument \"$a\" (usage: lab.sh up [N] [--nat NODE] [--with-manager])" ;;
		esac
	done
	[[ $want_nat != next ]] || die "up: --nat needs a node name like lab-b"
	if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > MAX_NODES)); then die "up: N must be 1 … $MAX_NODES"; fi
	lab_require_tools
	started=$(date +%s%N)

	if lab_is_up; then
		mapfile -t NODES < <(lab_nodes)
		if ((${#NODES[@]} != n)); then
			log "the lab is already up with ${#NODES[@]} node(s) (${NODES[*]}), not $n; left as it is (down, then up $n, to change it)"
		else
			log "the lab is already up (${NODES[*]})"
		fi
	else
		# A half-built lab (crashed up, killed daemons) is torn down first: cheaper
		# and more predictable than repairing it.
		if [[ -e $LAB_RUN || -e $LAB_STATE ]] || ip netns list | grep -q "^$NS_PREFIX-"; then
			log "cleaning up a partial lab first"
			lab_down quiet
		fi
		NODES=()
		for ((i = 1; i <= n; i++)); do NODES+=("$(node_name "$i")"); done
		if [[ -n $want_nat ]]; then
			((n >= 2)) || die "up: --nat needs at least 2 nodes"
			printf '%s\n' "${NODES[@]}" | grep -qx "$want_nat" || die "up: --nat $want_nat is not one of ${NODES[*]}"
		fi
		mkdir -p "$LAB_RUN" "$LAB_STATE"
		[[ -z $want_nat ]] || printf '%s\n' "$want_nat" >"$LAB_RUN/nat"
		chmod 0755 "$LAB_STATE"
		ssh-keygen -q -t ed25519 -N '' -C kvm-ferry-lab -f "$LAB_KEY"
		# A bind-mount target that must exist on the host; remembered so down removes it.
		if [[ ! -d /var/lib/kvm-ferry ]]; then
			mkdir -p /var/lib/kvm-ferry
			echo /var/lib/kvm-ferry >>"$LAB_RUN/created-dirs"
		fi
		net_add_switch
		[[ -z $want_nat ]] || net_add_nat_router "$want_nat"
		for node in "${NODES[@]}"; do
			prepare_node_state "$node"
			start_node_namespaces "$node"
		done
		[[ -z $want_nat ]] || lab_vpn_setup
		prepare_migration_certs
		: >"$LAB_KNOWN_HOSTS"
		for node in "${NODES[@]}"; do
			local hk_names
			hk_names="$(node_addr "$node"),$node"
			[[ -z $want_nat ]] || hk_names+=",$(node_vpn_addr "$node")"
			printf '%s %s\n' "$hk_names" "$(cut -d' ' -f1,2 "$(node_state "$node")/ssh/ssh_host_ed25519_key.pub")" >>"$LAB_KNOWN_HOSTS"
			write_node_config "$node"
			install_lab_peer_key "$node"
		done
		# The first node probes QEMU (only if the host's cache did not fit) and its
		# cache seeds the others before their libvirtd starts; those start together.
		start_node_daemons "${NODES[0]}"
		wait_node_daemons "${NODES[0]}"
		warm_capabilities "${NODES[0]}"
		for node in "${NODES[@]:1}"; do
			cp -a "$(node_state "${NODES[0]}")/cache-libvirt/qemu/capabilities/." "$(node_state "$node")/cache-libvirt/qemu/capabilities/"
			start_node_daemons "$node"
		done
		for node in "${NODES[@]:1}"; do wait_node_daemons "$node"; done
		[[ -z $want_nat ]] || lab_vpn_start
		if [[ ${KFLAB_JOIN:-} == 1 ]]; then
			lab_join_mesh
		fi
		printf '%s\n' "${NODES[@]}" >"$LAB_RUN/nodes"
		touch "$LAB_RUN/up"
	fi

	if ((with_manager)); then
		for node in "${NODES[@]}"; do start_manager "$node"; done
		for node in "${NODES[@]}"; do wait_manager "$node"; done
	fi
	for node in "${NODES[@]}"; do
		printf '%s\t%s\thttp://%s:%d/\n' "$node" "$(node_addr "$node")" "$(node_url_addr "$node")" "$MANAGER_PORT"
	done
	log "up in $(elapsed_s "$started") s; reach a node with: scripts/lab.sh exec ${NODES[0]} CMD…  (root namespace: $HOST_ADDR on $HOST_IF)"
}

# lab.sh manager NODE start|kill — (re)start a node's manager, or kill -9 it (crash tests).
lab_manager() {
	local node=${1:-} what=${2:-} S p
	[[ -n $node && -n $what ]] || die "usage: lab.sh manager NODE start|kill"
	require_node "$node"
	S=$(node_state "$node")
	case $what in
	start)
		start_manager "$node"
		wait_manager "$node"
		;;
	kill)
		p=$(read_pid "$S/run/kvm-ferry-manager.pid")
		if pid_alive "$p"; then
			kill -9 "$p"
			wait_until 10 "the manager of $node to die" pid_gone "$p"
		fi
		rm -f "$S/run/kvm-ferry-manager.pid" "$LAB_RUN/$node.manager.pid"
		log "$node: manager killed"
		;;
	*) die "usage: lab.sh manager NODE start|kill" ;;
	esac
}

# lab.sh daemon NODE libvirtd|sshd stop|start — for the failure tests.
lab_daemon() {
	local node=${1:-} d=${2:-} what=${3:-} S p
	[[ -n $node && -n $d && -n $what ]] || die "usage: lab.sh daemon NODE libvirtd|sshd stop|start|pause|resume"
	require_node "$node"
	S=$(node_state "$node")
	case $d:$what in
	libvirtd:stop | sshd:stop)
		p=$(read_pid "$S/run/$d.pid")
		if pid_alive "$p"; then
			kill "$p"
			wait_until 20 "$d of $node to stop" pid_gone "$p"
		fi
		log "$node: $d stopped"
		;;
	libvirtd:pause | libvirtd:resume)
		# SIGSTOP: the process stays, its socket still accepts, nothing answers — a hung
		# libvirtd as a client sees it. SIGCONT lets it carry on where it stopped.
		p=$(read_pid "$S/run/libvirtd.pid")
		pid_alive "$p" || die "$node: libvirtd is not running"
		if [[ $what == pause ]]; then kill -STOP "$p"; else kill -CONT "$p"; fi
		log "$node: libvirtd ${what}d (pid $p)"
		;;
	libvirtd:start)
		pid_alive "$(read_pid "$S/run/libvirtd.pid")" ||
			in_node_clean "$node" taskset -c 0 libvirtd -d </dev/null >>"$S/daemons.log" 2>&1
		wait_until 60 "libvirtd of $node" libvirt_answers "$node"
		cp "$S/run/libvirtd.pid" "$LAB_RUN/$node.libvirtd.pid"
		;;
	sshd:start)
		pid_alive "$(read_pid "$S/run/sshd.pid")" ||
			in_node_clean "$node" /usr/sbin/sshd -f "$S/ssh/sshd_config" -E "$S/sshd.log" </dev/null >>"$S/daemons.log" 2>&1
		wait_until 10 "sshd of $node" sshd_answers "$node"
		cp "$S/run/sshd.pid" "$LAB_RUN/$node.sshd.pid"
		;;
	*) die "usage: lab.sh daemon NODE libvirtd|sshd stop|start|pause|resume" ;;
	esac
}

pid_gone() { ! pid_alive "$1"; }
sshd_answers() { pid_alive "$(read_pid "$(node_state "$1")/run/sshd.pid")"; }
