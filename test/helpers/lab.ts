import { freshHttp } from './fresh-http.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// import.meta.url, not __dirname: benches load this under plain Node (tsx), not only vitest.
export const LAB_SCRIPT = fileURLToPath(new URL('../../scripts/lab.sh', import.meta.url));

/** Same rule as scripts/lab/common.sh: KFLAB_INSTANCE empty (default) or 2 … 9 picks the lab's names and subnets. */
export const LAB_INSTANCE = process.env.KFLAB_INSTANCE ?? '';
if (LAB_INSTANCE !== '' && !/^[2-9]$/.test(LAB_INSTANCE)) throw new Error(`KFLAB_INSTANCE must be empty or one digit 2 … 9 (got "${LAB_INSTANCE}")`);
const LAB_IDX = LAB_INSTANCE === '' ? 1 : Number(LAB_INSTANCE);
export const LAB_NET = `10.${76 + LAB_IDX}.0`;
export const LAB_NS_PREFIX = `kflab${LAB_INSTANCE}`;
export const LAB_STATE = `/var/lib/kvm-ferry-lab${LAB_INSTANCE}`;
export const LAB_RUN = `/run/kvm-ferry-lab${LAB_INSTANCE}`;
/** Addresses of the --nat topology (see scripts/lab/common.sh). */
export const LAB_NAT_PUBLIC_ADDR = `${LAB_NET}.254`;
export const LAB_PRIV_NET = `192.168.${76 + LAB_IDX}`;
export const LAB_VPN_NET = `10.${176 + LAB_IDX}.0`;

export interface LabNode {
  name: string;
  addr: string;
  url: string;
}

export const labNodes = (n: number): LabNode[] =>
  Array.from({ length: n }, (_, i) => {
    const name = `lab-${String.fromCharCode(97 + i)}`;
    const addr = `${LAB_NET}.${11 + i}`;
    return { name, addr, url: `http://${addr}:8080` };
  });

export function lab(...args: string[]): string {
  return execFileSync('bash', [LAB_SCRIPT, ...args], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs argv inside a lab node's namespaces; returns stdout. */
export function inNode(node: string, ...cmd: string[]): string {
  return lab('exec', node, ...cmd);
}

export function tryInNode(node: string, ...cmd: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: inNode(node, ...cmd) };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
  }
}

/**
 * One request on its own connection: lab tests kill and restart managers, and a pooled
 * keep-alive socket to a dead process fails the next request ("fetch failed").
 */
export async function http(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await freshHttp(base, method, path, body);
  return { status: r.status, json: r.json };
}

/**
 * A libvirt URI from inside `from` to `to`'s libvirtd for a plain `virsh migrate` (the
 * benches' baseline), over the same SSH account kvm-ferry uses: the lab's nodes are joined by
 * invite/join, so it is the node's restricted peer key and the host keys the join pinned
 * (the file the manager writes from its peers[]; the manager must have started once).
 */
export function meshLibvirtUri(from: LabNode, to: LabNode): string {
  const knownHosts = `${LAB_STATE}/${from.name}/kvm-ferry/peers_known_hosts`;
  const q = new URLSearchParams({ keyfile: '/var/lib/kvm-ferry/peer_ed25519', known_hosts: '/var/lib/kvm-ferry/peers_known_hosts', sshauth: 'privkey' });
  if (!existsSync(knownHosts)) throw new Error(`${from.name} has no ${knownHosts}: start its manager once (lab.sh up --with-manager)`);
  return `qemu+libssh2://root@${to.addr}/system?${q.toString()}`;
}

/** A lab node's SSH host key, "ssh-ed25519 AAAA…" (what a join pins). */
export const labHostKey = (node: string): string =>
  readFileSync(`${LAB_STATE}/${node}/ssh/ssh_host_ed25519_key.pub`, 'utf8').split(' ').slice(0, 2).join(' ');

/** Writes a known_hosts file in `from`'s state pinning `target`'s host key at `addr`; returns its path (for ssh -o UserKnownHostsFile). */
export function pinHostKey(from: string, target: string, addr: string): string {
  const file = `${LAB_STATE}/${from}/kvm-ferry/probe_known_hosts`;
  writeFileSync(file, `${addr} ${labHostKey(target)}\n`);
  return file;
}
