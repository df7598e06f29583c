#!/usr/bin/env bash
# lab.sh — several kvm-ferry "nodes" on this one machine, for migration tests.
#
# Usage: scripts/lab.sh up [N] [--nat NODE] [--with-manager]   N nodes lab-a … (default 3, max 5)
#        scripts/lab.sh down                      remove everything up created
#        scripts/lab.sh status
#        scripts/lab.sh exec NODE CMD…            run CMD inside a node
#        scripts/lab.sh shape NODE RATE|off       limit a node's link (tbf), e.g. 100mbit
#        scripts/lab.sh cut NODE | heal NODE      unplug / replug a node's link
#        scripts/lab.sh manager NODE start|kill   (re)start a node's manager, or kill -9 it
#        scripts/lab.sh daemon NODE libvirtd|sshd stop|start|pause|resume (pause/resume: libvirtd only, SIGSTOP/SIGCONT)
#   --nat NODE puts NODE in a private subnet behind a NAT router and joins all
#   nodes with an OpenVPN tunnel (scripts/lab/vpn.sh). KFLAB_INSTANCE=2…9 runs a
#   second lab beside the default one (other names, subnets and dirs).
#   The nodes are meshed as real servers are: the first invites each other one and it
#   joins with the token (kvm-ferry node invite/join: restricted peer keys, pinned host
#   keys, migration certificates from the cluster CA). KFLAB_JOIN=0 writes the peers
#   into the configs instead, with the lab's own unrestricted key (lab-smoke tests that).
#
# Node i is lab-<a…e> at 10.77.0.(10+i)/24: its own network namespace
# (kflab-<x>, veth to bridge kflab0 in namespace kflab-sw), its own mount and
# UTS namespaces (private /run, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
# /var/cache/libvirt, /var/lib/kvm-ferry, /root/.ssh; host name = node name),
# and in it virtlogd, libvirtd (qemu:///system) and an sshd on its address.
# The root namespace reaches the nodes through kflab-host (10.77.0.1).
#
# Files: /var/lib/kvm-ferry-lab/<node>/config.yaml (kvm-ferry config with every
# other node as a peer), /var/lib/kvm-ferry-lab/id_ed25519 (client key, root on
# every node), /var/lib/kvm-ferry-lab/known_hosts (every node's host key),
# /run/kvm-ferry-lab/<node>.<daemon>.pid. Logs: /var/lib/kvm-ferry-lab/<node>/*.log.
#
# Everything is idempotent: up on an up lab says so, down on a down lab does nothing.
# Needs root, no systemd. Guests must use TCG (domain type qemu): KVM guests hang here.
set -euo pipefail

LAB_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/lab" && pwd)
# shellcheck source=scripts/lab/common.sh
source "$LAB_LIB/common.sh"
# shellcheck source=scripts/lab/net.sh
source "$LAB_LIB/net.sh"
# shellcheck source=scripts/lab/vpn.sh
source "$LAB_LIB/vpn.sh"
# shellcheck source=scripts/lab/node-state.sh
source "$LAB_LIB/node-state.sh"
# shellcheck source=scripts/lab/up.sh
source "$LAB_LIB/up.sh"
# shellcheck source=scripts/lab/down.sh
source "$LAB_LIB/down.sh"

usage() { sed -n '4,16p' "$0" | sed 's/^# \{0,1\}//'; }

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
up) lab_up "$@" ;;
down) lab_down ;;
status) lab_status ;;
exec)
	[[ $# -ge 2 ]] || die "usage: lab.sh exec NODE CMD…"
	node=$1
	shift
	require_node "$node"
	# The caller's environment is kept (PATH, test variables); only the namespaces change.
	p=$(holder_pid "$node") || die "node $node has no namespace holder (run scripts/lab.sh down, then up)"
	exec nsenter -t "$p" -m -u -n -- "$@"
	;;
shape) lab_shape "$@" ;;
manager) lab_manager "$@" ;;
daemon) lab_daemon "$@" ;;
cut) lab_cut "$@" ;;
heal) lab_heal "$@" ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
