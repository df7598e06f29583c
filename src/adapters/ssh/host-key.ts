import { createHash } from 'node:crypto';

export interface PinnedHostKey {
  type: string;
  blob: Buffer;
}

/** "ssh-ed25519 AAAA… comment" → the key type and the raw key blob ssh2 shows to hostVerifier. */
export function parsePinnedHostKey(line: string): PinnedHostKey | null {
  const [type, b64] = line.trim().split(/\s+/);
  if (!type || !b64 || !/^(ssh-|ecdsa-)[a-z0-9-]+$/.test(type) || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return null;
  const blob = Buffer.from(b64, 'base64');
  // The blob starts with its own type string; a pin whose two halves disagree is corrupt.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len <= 0 || blob.subarray(4, 4 + len).toString('ascii') !== type) return null;
  return { type, blob };
}

/** The host-key algorithms to offer, so the server presents the key that was pinned. */
export function hostKeyAlgorithmsFor(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
