import type { PeerConfig } from '../../config.js';
import { hostForUri } from '../virsh/migrate-args.js';

/**
 * libvirt's libssh2 transport takes the key file and a known_hosts file in the URI,
 * so the control channel to a peer uses the same pinned host key as ssh2 does
 * (the plain "ssh" transport would trust ~/.ssh/known_hosts instead).
 * proxy=native makes libvirt ask the peer for `sh -c 'virt-ssh-helper 'qemu:///system''`
 * — one fixed string the peer's forced command (kvm-ferry-peer-shell) maps to
 * virt-ssh-helper — instead of its longer which/nc fallback script.
 */
export function buildPeerLibvirtUri(peer: PeerConfig, knownHostsFile: string): string {
  const port = peer.sshPort === 22 ? '' : `:${peer.sshPort}`;
  const q = new URLSearchParams({ keyfile: peer.sshKeyFile, known_hosts: knownHostsFile, sshauth: 'privkey', proxy: 'native' });
  return `qemu+libssh2://${encodeURIComponent(peer.sshUser)}@${hostForUri(peer.sshHost)}${port}/system?${q.toString().replace(/%2F/g, '/')}`;
}

/** known_hosts lines for the pinned keys: "host key" on port 22, "[host]:port key" otherwise. */
export function knownHostsText(peers: readonly PeerConfig[]): string {
  return peers
    .map((p) => {
      const [type, blob] = p.hostKey.trim().split(/\s+/);
      const host = p.sshPort === 22 ? p.sshHost : `[${p.sshHost}]:${p.sshPort}`;
      return `${host} ${type} ${blob}`;
    })
    .join('\n') + '\n';
}
