#!/usr/bin/env bash
# scripts/lab/node-init.sh NODE — the namespace holder of one lab node.
#
# Started by `lab.sh up` as
#   ip netns exec kflab-X unshare --mount --uts --propagation private node-init.sh NODE [STATE_DIR RUN_DIR]
# so it already runs in the node's network namespace (and `ip netns exec` has
# remounted /sys for it), in a fresh mount namespace whose mounts propagate
# nowhere, and in a fresh UTS namespace. It bind-mounts the node's private
# directories over the host's, sets the host name, then becomes `sleep infinity`
# so the namespaces live on; everything else enters with `nsenter -t PID -m -u -n`.
set -euo pipefail

node=$1
S=${2:-/var/lib/kvm-ferry-lab/$node}  # the node's state dir (lab instance aware)
run_record=${3:-/run/kvm-ferry-lab}

# Record our PID while /run is still the host's: the same PID is then `sleep`.
echo $$ >"$run_record/$node.holder.pid"

bind() { # bind SRC DST — DST (a directory or a file) is hidden by SRC in this node only
	mount --bind "$1" "$2"
}

# /run: libvirtd and virtlogd sockets and PID files, sshd's privilege-separation
# dir, QEMU's per-domain state. Private, else every node's libvirtd would fight
# over the host's /run/libvirt/libvirt-sock. /var/run is a symlink to /run on
# Debian, so it follows. Kept under the state dir (not a tmpfs) so the sockets
# can also be reached from the root namespace when debugging.
bind "$S/run" /run
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd
chmod 1777 /run/lock

# libvirt's configuration (own host_uuid, no other node's domains), its state
# (domain status, master keys, monitor sockets), logs and capability cache.
bind "$S/etc-libvirt" /etc/libvirt
bind "$S/var-lib-libvirt" /var/lib/libvirt
bind "$S/log-libvirt" /var/log/libvirt
bind "$S/cache-libvirt" /var/cache/libvirt

# kvm-ferry's own data (SQLite, images, ISOs) and a private copy of the test
# guest: libvirt relabels (chowns) kernel/initrd/disks of the VMs it starts, and
# must not do that to the files the host's own test VMs use.
bind "$S/kvm-ferry" /var/lib/kvm-ferry
bind "$S/cache-kvm-ferry" /var/cache/kvm-ferry

# /root is shared by all nodes and the host. ssh (as used by libvirt's ssh
# transports and by hand) writes ~/.ssh/known_hosts; give each node its own
# ~/.ssh so nothing a node learns leaks into the host's or another node's.
# A fresh machine's root may never have used ssh: the mount point must exist (an empty
# 0700 directory on the host is what ssh would make itself).
[[ -d /root/.ssh ]] || install -d -m 0700 /root/.ssh
bind "$S/root-ssh" /root/.ssh

# A node is a fresh server: root's shell start-up files are Debian's defaults, not
# the development host's (whose ~/.bashrc may run tools such as pyenv, and bash runs
# ~/.bashrc for every command sshd starts: seconds per remote command).
for f in .bashrc .profile; do
	if [[ -f /root/$f ]]; then
		if [[ -f /etc/skel/$f ]]; then cp /etc/skel/$f "$S/root-$f"; else : >"$S/root-$f"; fi
		bind "$S/root-$f" "/root/$f"
	fi
done

# Host name: UTS namespace plus the files programs read it from. /etc/hosts
# names only this node: peers are reached by address, never by name (like the
# product, which must send migration data to explicit addresses).
hostname "$node"
bind "$S/etc/hostname" /etc/hostname
bind "$S/etc/hosts" /etc/hosts

touch "$S/ready"
exec sleep infinity
