/**
 * The invite token a new node pastes: "kf1." + base64url(JSON) + "." + checksum.
 * The checksum (first 6 bytes of SHA-256 over the payload text, base64url) is not a
 * signature — the secret inside is what authenticates — it only makes a token cut
 * short by a terminal or a chat window fail with a sentence instead of a confusing
 * JSON or SSH error. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { isValidNodeName } from '../names.js';

export const TOKEN_PREFIX = 'kf1';

export interface InviteToken {
  /** Row id of the invite on the inviter (the secret's hash is stored under it). */
  id: string;
  /** The inviter's node name and manager port (its identity as a peer). */
  node: string;
  managerPort: number;
  /** Addresses the joiner may use to reach the inviter's sshd (LAN, public, tunnel); tried in order. */
  addresses: string[];
  sshPort: number;
  /** The inviter's SSH host key "ssh-ed25519 AAAA…": pinned before anything is sent. */
  hostKey: string;
  /** SHA-256 fingerprint of the cluster's migration CA certificate, or "" when none was made yet. */
  caFingerprint: string;
  /** 32 random bytes, base64url: proves the joiner holds this token (and derives the bootstrap SSH key). */
  secret: string;
  /** Expiry, ms since the epoch. */
  expiresAtMs: number;
}

export type TokenResult = { ok: true; token: InviteToken } | { ok: false; reason: string };

const B64URL = /^[A-Za-z0-9_-]+$/;
const HOST = /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/;
const HOSTKEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*$/;

function checksum(payload: string): string {
  return createHash('sha256').update(payload).digest().subarray(0, 6).toString('base64url');
}

export function encodeToken(t: InviteToken): string {
  const payload = Buffer.from(JSON.stringify(t), 'utf8').toString('base64url');
  return `${TOKEN_PREFIX}.${payload}.${checksum(payload)}`;
}

/** The token as pasted (surrounding white space and line breaks from wrapping are ignored), or one sentence why not. */
export function decodeToken(text: string): TokenResult {
  const s = text.replace(/\s+/g, '');
  if (s === '') return { ok: false, reason: 'No invite token was given; paste the whole token printed by "kvm-ferry node invite".' };
  const parts = s.split('.');
  if (parts[0] !== TOKEN_PREFIX) {
    return { ok: false, reason: /^kf[0-9]+$/.test(parts[0] ?? '') ? `This invite token is version ${parts[0]!.slice(2)}, which this kvm-ferry does not read; update kvm-ferry on this node.` : 'This is not a kvm-ferry invite token (it must start with "kf1.").' };
  }
  if (parts.length !== 3 || !parts[2] || !B64URL.test(parts[1] ?? '') || !B64URL.test(parts[2])) {
    return { ok: false, reason: 'The invite token is incomplete (it was probably cut short when copied); copy it again in full.' };
  }
  if (checksum(parts[1]!) !== parts[2]) {
    return { ok: false, reason: 'The invite token is damaged or incomplete (its checksum does not match); copy it again in full.' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'The invite token is damaged (its content is not readable); copy it again in full.' };
  }
  const t = validate(raw);
  return t ? { ok: true, token: t } : { ok: false, reason: 'The invite token carries invalid fields; make a new one with "kvm-ferry node invite".' };
}

function validate(raw: unknown): InviteToken | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const o = raw as Record<string, unknown>;
  const port = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
  if (typeof o.id !== 'string' || !/^[A-Za-z0-9_-]{8,64}$/.test(o.id)) return null;
  if (!isValidNodeName(o.node)) return null;
  if (!port(o.managerPort) || !port(o.sshPort)) return null;
  if (!Array.isArray(o.addresses) || o.addresses.length === 0 || o.addresses.length > 8) return null;
  if (!o.addresses.every((a) => typeof a === 'string' && HOST.test(a) && !a.includes('..'))) return null;
  if (typeof o.hostKey !== 'string' || !HOSTKEY.test(o.hostKey)) return null;
  if (typeof o.caFingerprint !== 'string' || !/^(|SHA256:[A-Za-z0-9+/_=-]{20,64})$/.test(o.caFingerprint)) return null;
  if (typeof o.secret !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(o.secret)) return null;
  if (typeof o.expiresAtMs !== 'number' || !Number.isFinite(o.expiresAtMs)) return null;
  return {
    id: o.id, node: o.node as string, managerPort: o.managerPort as number, addresses: o.addresses as string[], sshPort: o.sshPort as number,
    hostKey: o.hostKey, caFingerprint: o.caFingerprint, secret: o.secret, expiresAtMs: o.expiresAtMs,
  };
}

/** "15m", "1h", "90s" → ms; invites live 1 min … 24 h. */
export function parseTtl(s: string): number | { error: string } {
  const m = /^([0-9]{1,5})(s|m|h)$/.exec(s.trim());
  if (!m) return { error: `--ttl must look like 15m, 1h or 90s, got "${s}".` };
  const ms = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
  if (ms < 60_000 || ms > 24 * 3_600_000) return { error: '--ttl must be between 1 minute and 24 hours.' };
  return ms;
}
