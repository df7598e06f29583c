/**
 * The pure decisions of invite/join/remove: what a node says about itself to a new
 * peer, whether a join request is accepted, the peers[] entry and the restricted
 * authorized_keys line made from it. No I/O: the service feeds in what it read.
 */
import { isValidNodeName } from '../names.js';
import type { PeerConfig } from '../../config.js';

/** What a node tells a new peer about itself (and what the inviter vouches for about existing peers). */
export interface PeerInfo {
  name: string;
  /** Its peer key's public half, "ssh-ed25519 AAAA…": installed restricted on the other side. */
  peerKey: string;
  /** Its SSH host key, pinned by the other side. */
  hostKey: string;
  /** Where the others reach its sshd and send migration data (LAN, public or tunnel address). */
  address: string;
  sshPort: number;
  /** Where its manager listens as seen on itself (the end of the SSH tunnel). */
  managerHost: string;
  managerPort: number;
  /** Its page, for links (optional). */
  url?: string;
}

export interface JoinRequest {
  secret: string;
  joiner: PeerInfo;
}

export interface InviteRecord {
  id: string;
  secretHash: string;
  expiresAtMs: number;
  usedAtMs: number | null;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

const KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*$/;
const ADDRESS = /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/;
const port = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

/** Type and base64 of a public key line, without its comment (options are never accepted). */
export function plainKey(line: string): string | null {
  const [t, b] = line.trim().split(/\s+/);
  const k = `${t ?? ''} ${b ?? ''}`;
  return KEY.test(k) ? k : null;
}

/** A PeerInfo from untrusted JSON, or why not. */
export function parsePeerInfo(raw: unknown, what: string): PeerInfo | { error: string } {
  if (typeof raw !== 'object' || raw === null) return { error: `${what} is missing.` };
  const o = raw as Record<string, unknown>;
  if (!isValidNodeName(o.name)) return { error: `${what} has an invalid node name.` };
  const peerKey = typeof o.peerKey === 'string' ? plainKey(o.peerKey) : null;
  if (!peerKey) return { error: `${what} (${o.name}) has no valid peer public key.` };
  const hostKey = typeof o.hostKey === 'string' ? plainKey(o.hostKey) : null;
  if (!hostKey) return { error: `${what} (${o.name}) has no valid SSH host key.` };
  if (typeof o.address !== 'string' || !ADDRESS.test(o.address) || o.address.includes('..')) return { error: `${what} (${o.name}) has an invalid address.` };
  if (typeof o.managerHost !== 'string' || !ADDRESS.test(o.managerHost)) return { error: `${what} (${o.name}) has an invalid manager host.` };
  if (!port(o.sshPort) || !port(o.managerPort)) return { error: `${what} (${o.name}) has an invalid port.` };
  if (o.url !== undefined && (typeof o.url !== 'string' || !/^https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~/-]*)?$/.test(o.url))) return { error: `${what} (${o.name}) has an invalid url.` };
  const info: PeerInfo = { name: o.name, peerKey, hostKey, address: o.address, sshPort: o.sshPort as number, managerHost: o.managerHost, managerPort: o.managerPort as number };
  if (typeof o.url === 'string') info.url = o.url;
  return info;
}

/**
 * The inviter's decision on a join request. `secretMatches` is the constant-time
 * comparison of the request's secret hash with the invite's, done by the caller.
 */
export function decideJoin(args: { invite: InviteRecord | null; secretMatches: boolean; now: number; localName: string; peerNames: readonly string[]; joiner: PeerInfo; localHostKey: string; peerHostKeys: readonly string[] }): Verdict {
  const { invite, joiner } = args;
  if (!invite) return { ok: false, reason: 'This invite is not known on the inviting node (it was never made there, or was withdrawn).' };
  if (!args.secretMatches) return { ok: false, reason: 'The invite secret is wrong; the token may have been forged or altered.' };
  if (invite.usedAtMs !== null) return { ok: false, reason: 'This invite was already used; make a new one with "kvm-ferry node invite".' };
  if (args.now >= invite.expiresAtMs) return { ok: false, reason: 'This invite has expired; make a new one with "kvm-ferry node invite".' };
  if (joiner.name === args.localName || args.peerNames.includes(joiner.name)) {
    return { ok: false, reason: `The node name "${joiner.name}" is already taken in this cluster; give the new node another nodeName.` };
  }
  const hk = plainKey(joiner.hostKey);
  if (hk === plainKey(args.localHostKey) || args.peerHostKeys.some((k) => plainKey(k) === hk)) {
    return { ok: false, reason: `The new node's SSH host key is already a member's (${joiner.name} may be a copy of an existing node).` };
  }
  return { ok: true };
}

/** Whether the joiner may take this node's answer: the inviter must be who the token said. */
export function checkInviterAnswer(expectedNode: string, inviter: PeerInfo, tokenHostKey: string, ownName: string, peers: readonly PeerInfo[]): Verdict {
  if (inviter.name !== expectedNode) return { ok: false, reason: `The inviting node answered as "${inviter.name}", not "${expectedNode}" as the token says.` };
  if (plainKey(inviter.hostKey) !== plainKey(tokenHostKey)) return { ok: false, reason: 'The inviting node reported a host key other than the one in the token.' };
  const names = new Set([ownName, inviter.name]);
  for (const p of peers) {
    if (names.has(p.name)) return { ok: false, reason: `The inviting node's member list names "${p.name}" twice or names this node.` };
    names.add(p.name);
  }
  return { ok: true };
}

/** The peers[] entry for a node described by a PeerInfo; this node logs in with its own peer key. */
export function peerConfigFor(info: PeerInfo, ownKeyFile: string): PeerConfig {
  const p: PeerConfig = {
    name: info.name, sshHost: info.address, sshPort: info.sshPort, sshUser: 'root', sshKeyFile: ownKeyFile,
    hostKey: info.hostKey, dataAddress: info.address, managerHost: info.managerHost, managerPort: info.managerPort,
  };
  if (info.url) p.url = info.url;
  return p;
}

/** The comment that tags a peer's authorized_keys line, so `remove` finds exactly it. */
export const peerKeyTag = (name: string) => `kvm-ferry-peer:${name}`;
export const inviteKeyTag = (id: string) => `kvm-ferry-invite:${id}`;

export interface ForcedCommand {
  /** Absolute path of node and of kvm-ferry's peer-shell entry, and this node's config file. */
  nodeBin: string;
  peerShell: string;
  configFile: string;
}

const PLAIN_PATH = /^\/[A-Za-z0-9_./-]+$/;

function command(fc: ForcedCommand, extra: string): string {
  for (const p of [fc.nodeBin, fc.peerShell, fc.configFile]) {
    // These go inside command="…": no quote, backslash or space that could end or extend it.
    if (!PLAIN_PATH.test(p)) throw new Error(`"${p}" must be an absolute path of plain characters to be used in authorized_keys`);
  }
  return `command="${fc.nodeBin} ${fc.peerShell} --config ${fc.configFile}${extra}"`;
}

/**
 * A peer's key: restrict (no pty, agent, X11, ~/.ssh/rc), port forwarding only to this
 * node's manager and the VNC ports, and the peer shell as its forced command (the same
 * line scripts/peer-key.sh writes).
 */
export function peerKeyLine(peer: { name: string; peerKey: string }, manager: { host: string; port: number }, fc: ForcedCommand, vnc: [number, number] = [5900, 5999]): string {
  const key = plainKey(peer.peerKey);
  if (!key) throw new Error(`the peer key of ${peer.name} is not a plain public key`);
  let opens = `permitopen="${manager.host.includes(':') ? `[${manager.host}]` : manager.host}:${manager.port}",`;
  for (let p = vnc[0]; p <= vnc[1]; p++) opens += `permitopen="127.0.0.1:${p}",`;
  return `restrict,port-forwarding,${opens}${command(fc, '')} ${key} ${peerKeyTag(peer.name)}`;
}

/**
 * The invite's bootstrap key: its private half is derived from the token's secret, so only
 * the token's holder can log in; sshd itself stops accepting it at expiry-time, and its
 * forced command runs only the join verb for this one invite (no forwarding, no pty).
 */
export function inviteKeyLine(id: string, publicKey: string, expiresAtMs: number, fc: ForcedCommand): string {
  const key = plainKey(publicKey);
  if (!key || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) throw new Error('invalid invite key');
  return `restrict,expiry-time="${sshTime(expiresAtMs)}",${command(fc, ` --join-invite ${id}`)} ${key} ${inviteKeyTag(id)}`;
}

/** YYYYMMDDHHMMSSZ, as authorized_keys' expiry-time takes it (UTC). */
export function sshTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

/** authorized_keys text with every line tagged `tag` (or holding `key`) removed, then `add` appended. */
export function replaceKeyLines(text: string, drop: { tag?: string; key?: string }, add: string[] = []): string {
  const keep = text.split('\n').filter((l) => {
    if (l.trim() === '') return false;
    if (drop.tag && l.trimEnd().endsWith(` ${drop.tag}`)) return false;
    if (drop.key && l.includes(` ${drop.key}`)) return false;
    return true;
  });
  return [...keep, ...add].map((l) => l + '\n').join('');
}

/** authorized_keys text without the bootstrap lines of invites not in `live` (used, expired or unknown). */
export function pruneInviteLines(text: string, live: ReadonlySet<string>): string {
  return text
    .split('\n')
    .filter((l) => {
      const m = / kvm-ferry-invite:([A-Za-z0-9_-]+)\s*$/.exec(l);
      return !m || live.has(m[1]!);
    })
    .join('\n');
}

/** The joiner's migration CA against the cluster's (from the token); either side may have none yet. */
export function checkClusterCa(tokenFp: string, localFp: string): Verdict {
  if (tokenFp && localFp && tokenFp !== localFp) {
    return { ok: false, reason: `This node's migration CA (${localFp}) is not the cluster's (${tokenFp}); install the cluster's certificates (scripts/migration-certs.sh) first.` };
  }
  return { ok: true };
}
