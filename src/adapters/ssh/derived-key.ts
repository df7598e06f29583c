/**
 * The invite's bootstrap SSH key, derived from the token's secret: the inviter installs
 * its public half (restricted, with sshd's own expiry-time) and the joiner rebuilds the
 * private half from the token. So no password login has to be enabled in sshd, no
 * extra account made, and only the token's holder can log in, only until it expires.
 */
import { createPrivateKey, createPublicKey, hkdfSync, randomBytes } from 'node:crypto';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface DerivedKey {
  /** "ssh-ed25519 AAAA…" */
  publicKey: string;
  /** OpenSSH private key file text (unencrypted), for ssh2 or ssh -i. */
  privateKey: string;
}

function sshString(b: Buffer | string): Buffer {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
}

export function deriveInviteKey(secret: string, inviteId: string): DerivedKey {
  const seed = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'base64url'), 'kvm-ferry-invite-key', inviteId, 32));
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const pub = spki.subarray(spki.length - 32);
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(`invite-${inviteId}`)]);
  const pad: number[] = [];
  for (let i = 1; (section.length + pad.length) % 8 !== 0; i++) pad.push(i);
  section = Buffer.concat([section, Buffer.from(pad)]);
  const one = Buffer.alloc(4);
  one.writeUInt32BE(1);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), sshString('none'), sshString('none'), sshString(''), one, sshString(blob), sshString(section)]);
  const b64 = body.toString('base64').replace(/.{1,70}/g, '$&\n');
  return {
    publicKey: `ssh-ed25519 ${blob.toString('base64')}`,
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`,
  };
}
