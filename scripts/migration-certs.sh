#!/usr/bin/env bash
# migration-certs.sh — a cluster CA and each node's certificates for QEMU's TLS
# migration (memory and NBD disk streams encrypted, only the cluster's nodes accepted).
#
# Usage: scripts/migration-certs.sh --out DIR NODE=ADDR[,ADDR…] …
#
#   NODE=ADDR,…  a node and every address (IP or DNS name) peers send migration data
#                to: its dataAddress, and its tunnel address when it is behind OpenVPN.
#   --out DIR    DIR/ca/{ca-cert.pem,ca-key.pem} — made once, reused on later runs to
#                add nodes — and DIR/<node>/ with ca-cert.pem, server-cert.pem,
#                server-key.pem, client-cert.pem, client-key.pem.
#
# Install DIR/<node>/* on that node, where libvirt looks for migration certificates:
#   install -d -m 0750 -g libvirt-qemu /etc/pki/libvirt-migrate
#   install -m 0640 -g libvirt-qemu DIR/<node>/*.pem /etc/pki/libvirt-migrate/
#   systemctl restart libvirtd
# (QEMU runs as libvirt-qemu and reads the keys itself.) Keep DIR/ca/ca-key.pem off the nodes.
set -euo pipefail

die() {
	printf 'migration-certs: ERROR: %s\n' "$*" >&2
	exit 1
}
out="" nodes=()
while (($#)); do
	case $1 in
	--out) out=${2:-} && shift ;;
	-h | --help) sed -n '4,17p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
	-*) die "unknown option $1" ;;
	*) nodes+=("$1") ;;
	esac
	shift
done
[[ -n $out ]] || die "--out DIR is required"
((${#nodes[@]})) || die "name at least one NODE=ADDR"
command -v openssl >/dev/null || die "openssl must be installed (scripts/install-pkgs.sh)"
# Validate everything before writing anything.
for spec in "${nodes[@]}"; do
	[[ $spec =~ ^[A-Za-z0-9._-]{1,63}=[A-Za-z0-9.:-]+(,[A-Za-z0-9.:-]+)*$ ]] || die "\"$spec\" is not NODE=ADDR[,ADDR…] (node names: letters, digits, . _ -)"
done

umask 077
mkdir -p "$out/ca"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# ECDSA P-256: small keys, fast handshakes; QEMU's GnuTLS accepts them.
key_opts=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [[ ! -s $out/ca/ca-cert.pem ]]; then
	openssl req -x509 "${key_opts[@]}" -keyout "$out/ca/ca-key.pem" -out "$out/ca/ca-cert.pem" -days 3650 \
		-subj "/CN=kvm-ferry migration CA $(date -u +%Y%m%dT%H%M%SZ)" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi

# issue NODE ROLE SAN → DIR/NODE/ROLE-{cert,key}.pem
issue() {
	local node=$1 role=$2 san=$3 eku=clientAuth
	[[ $role == server ]] && eku=serverAuth
	openssl req "${key_opts[@]}" -keyout "$out/$node/$role-key.pem" -out "$tmp/$node-$role.csr" -subj "/CN=$node" 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nsubjectAltName=%s\n' "$eku" "$san" >"$tmp/$node-$role.ext"
	openssl x509 -req -in "$tmp/$node-$role.csr" -CA "$out/ca/ca-cert.pem" -CAkey "$out/ca/ca-key.pem" -CAcreateserial \
		-days 825 -sha256 -extfile "$tmp/$node-$role.ext" -out "$out/$node/$role-cert.pem" 2>/dev/null
}

for spec in "${nodes[@]}"; do
	node=${spec%%=*}
	san="DNS:$node"
	IFS=, read -r -a addrs <<<"${spec#*=}"
	for a in "${addrs[@]}"; do
		# The source checks the destination's certificate against the address it connects to.
		if [[ $a =~ ^[0-9.]+$ || $a == *:* ]]; then san+=",IP:$a"; else san+=",DNS:$a"; fi
	done
	mkdir -p "$out/$node"
	cp "$out/ca/ca-cert.pem" "$out/$node/ca-cert.pem"
	issue "$node" server "$san"
	issue "$node" client "DNS:$node"
	printf 'migration-certs: %s: %s\n' "$node" "$out/$node (server names $san)"
done
