import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, parseTtl, type InviteToken } from '../../src/domain/join/token.js';
import { checkInviterAnswer, decideJoin, inviteKeyLine, parsePeerInfo, peerConfigFor, peerKeyLine, replaceKeyLines, sshTime, pruneInviteLines, checkClusterCa, type InviteRecord, type PeerInfo } from '../../src/domain/join/decisions.js';
import { peerVerb } from '../../src/domain/peer-command.js';
import { deriveInviteKey } from '../../src/adapters/ssh/derived-key.js';
import { RequestTrust } from '../../src/web/proxy-trust.js';
import type { IncomingMessage } from 'node:http';

const HK = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAyDwJrIRUK5M6WcJCAuYr1vx6FnBF9RUy7YA3ZeCsjg';
const HK2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQ1bQ6oUrjmE8j3Wp2cBuSi8oIDOF9xZ0Z1ZXcHh0Jm';
const token: InviteToken = {
  id: 'abcdefgh12', node: 'alpha', managerPort: 8080, addresses: ['10.0.0.1', '10.177.0.1'], sshPort: 22, hostKey: HK, caFingerprint: '',
  secret: 'A'.repeat(43), expiresAtMs: 1_700_000_000_000,
};
const joiner: PeerInfo = { name: 'beta', peerKey: HK2, hostKey: HK2, address: '10.0.0.2', sshPort: 22, managerHost: '127.0.0.1', managerPort: 8080 };
const fc = { nodeBin: '/usr/bin/node', peerShell: '/opt/kvm-ferry/dist/src/peer-shell/main.js', configFile: '/etc/kvm-ferry/config.yaml' };

describe('invite token codec', () => {
  it('round-trips, ignoring white space from wrapping', () => {
    const s = encodeToken(token);
    expect(s).toMatch(/^kf1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{8}$/);
    expect(decodeToken(s)).toEqual({ ok: true, token });
    expect(decodeToken(`  ${s.slice(0, 40)}\n${s.slice(40)}\n`)).toEqual({ ok: true, token });
  });

  it('says in one sentence what is wrong with a truncated, damaged, foreign or future token', () => {
    const s = encodeToken(token);
    const reason = (t: string) => (decodeToken(t) as { reason: string }).reason;
    expect(reason(s.slice(0, -3))).toMatch(/damaged or incomplete/);
    expect(reason(s.slice(0, 30))).toMatch(/incomplete/);
    expect(reason(s.replace('kf1.', 'kf1.x'))).toMatch(/checksum/);
    expect(reason('hello')).toMatch(/not a kvm-ferry invite token/);
    expect(reason('kf2.abc.def')).toMatch(/version 2/);
    expect(reason('')).toMatch(/No invite token/);
    expect(reason(encodeToken({ ...token, node: 'bad name' }))).toMatch(/invalid fields/);
    expect(reason(encodeToken({ ...token, addresses: ['a;b'] }))).toMatch(/invalid fields/);
  });

  it('parses TTLs within bounds', () => {
    expect(parseTtl('15m')).toBe(900_000);
    expect(parseTtl('1h')).toBe(3_600_000);
    expect(parseTtl('5s')).toEqual({ error: expect.stringMatching(/between 1 minute/) });
    expect(parseTtl('abc')).toEqual({ error: expect.stringMatching(/15m/) });
  });
});

describe('join decisions', () => {
  const invite: InviteRecord = { id: 'abcdefgh12', secretHash: 'x', expiresAtMs: 2000, usedAtMs: null };
  const base: Parameters<typeof decideJoin>[0] = { invite, secretMatches: true, now: 1000, localName: 'alpha', peerNames: ['gamma'], joiner, localHostKey: HK, peerHostKeys: [] };

  it('accepts a fresh invite with the right secret and a free name', () => {
    expect(decideJoin(base)).toEqual({ ok: true });
  });

  it('refuses unknown, wrong secret, used, expired, taken name, duplicate host key', () => {
    const r = (patch: Partial<typeof base>) => (decideJoin({ ...base, ...patch }) as { reason: string }).reason;
    expect(r({ invite: null })).toMatch(/not known/);
    expect(r({ secretMatches: false })).toMatch(/secret is wrong/);
    expect(r({ invite: { ...invite, usedAtMs: 500 } })).toMatch(/already used/);
    expect(r({ now: 2000 })).toMatch(/expired/);
    expect(r({ joiner: { ...joiner, name: 'gamma' } })).toMatch(/"gamma" is already taken/);
    expect(r({ joiner: { ...joiner, name: 'alpha' } })).toMatch(/"alpha" is already taken/);
    expect(r({ joiner: { ...joiner, hostKey: HK } })).toMatch(/already a member's/);
  });

  it('checks that the inviter is who the token says', () => {
    expect(checkInviterAnswer('alpha', { ...joiner, name: 'alpha', hostKey: HK }, HK, 'beta', [])).toEqual({ ok: true });
    expect(checkInviterAnswer('alpha', { ...joiner, name: 'other', hostKey: HK }, HK, 'beta', [])).toMatchObject({ ok: false });
    expect(checkInviterAnswer('alpha', { ...joiner, name: 'alpha', hostKey: HK2 }, HK, 'beta', [])).toMatchObject({ ok: false });
    expect(checkInviterAnswer('alpha', { ...joiner, name: 'alpha', hostKey: HK }, HK, 'beta', [{ ...joiner, name: 'beta' }])).toMatchObject({ ok: false });
  });

  it('validates peer info from the wire', () => {
    expect(parsePeerInfo(joiner, 'x')).toEqual(joiner);
    expect(parsePeerInfo({ ...joiner, peerKey: `restrict ${HK2}` }, 'x')).toMatchObject({ error: expect.stringMatching(/peer public key/) });
    expect(parsePeerInfo({ ...joiner, address: '$(id)' }, 'x')).toMatchObject({ error: expect.stringMatching(/address/) });
    expect(parsePeerInfo({ ...joiner, sshPort: 0 }, 'x')).toMatchObject({ error: expect.stringMatching(/port/) });
    expect(parsePeerInfo({ ...joiner, name: '../x' }, 'x')).toMatchObject({ error: expect.stringMatching(/name/) });
  });

  it('builds the peers[] entry and the restricted key lines', () => {
    expect(peerConfigFor(joiner, '/var/lib/kvm-ferry/peer_ed25519')).toEqual({
      name: 'beta', sshHost: '10.0.0.2', sshPort: 22, sshUser: 'root', sshKeyFile: '/var/lib/kvm-ferry/peer_ed25519', hostKey: HK2,
      dataAddress: '10.0.0.2', managerHost: '127.0.0.1', managerPort: 8080,
    });
    const line = peerKeyLine(joiner, { host: '127.0.0.1', port: 8080 }, fc, [5900, 5901]);
    expect(line).toBe(`restrict,port-forwarding,permitopen="127.0.0.1:8080",permitopen="127.0.0.1:5900",permitopen="127.0.0.1:5901",command="/usr/bin/node /opt/kvm-ferry/dist/src/peer-shell/main.js --config /etc/kvm-ferry/config.yaml" ${HK2} kvm-ferry-peer:beta`);
    expect(inviteKeyLine('abcdefgh12', HK, Date.UTC(2026, 11, 2, 18, 5, 9), fc)).toBe(
      `restrict,expiry-time="20261202180509Z",command="/usr/bin/node /opt/kvm-ferry/dist/src/peer-shell/main.js --config /etc/kvm-ferry/config.yaml --join-invite abcdefgh12" ${HK} kvm-ferry-invite:abcdefgh12`,
    );
    expect(() => peerKeyLine(joiner, { host: '127.0.0.1', port: 8080 }, { ...fc, configFile: '/etc/a" b' })).toThrow(/plain characters/);
    expect(sshTime(0)).toBe('19700101000000Z');
  });

  it('refuses a joiner whose migration CA is another cluster\'s, and accepts one with none yet', () => {
    const fp = `SHA256:${'a'.repeat(43)}=`;
    expect(checkClusterCa(fp, fp)).toEqual({ ok: true });
    expect(checkClusterCa(fp, '')).toEqual({ ok: true });
    expect(checkClusterCa('', fp)).toEqual({ ok: true });
    expect(checkClusterCa(fp, `SHA256:${'b'.repeat(43)}=`)).toMatchObject({ ok: false, reason: expect.stringMatching(/is not the cluster's/) });
  });

  it('prunes the bootstrap lines of invites that are no longer live', () => {
    const text = `keep me\nrestrict x kvm-ferry-invite:aaaaaaaa\nrestrict y kvm-ferry-invite:bbbbbbbb\n`;
    expect(pruneInviteLines(text, new Set(['bbbbbbbb']))).toBe('keep me\nrestrict y kvm-ferry-invite:bbbbbbbb\n');
  });

  it('replaces key lines by tag, keeping the others', () => {
    const text = `ssh-ed25519 AAAA root@x\nrestrict ${HK2} kvm-ferry-peer:beta\n`;
    expect(replaceKeyLines(text, { tag: 'kvm-ferry-peer:beta' }, ['new'])).toBe('ssh-ed25519 AAAA root@x\nnew\n');
    expect(replaceKeyLines(text, { tag: 'kvm-ferry-peer:bet' })).toBe(text);
  });

  it('derives the same bootstrap key from the same secret, another from another', () => {
    expect(deriveInviteKey('A'.repeat(43), 'abcdefgh12').publicKey).toBe(HK);
    expect(deriveInviteKey('B'.repeat(43), 'abcdefgh12').publicKey).not.toBe(HK);
    expect(deriveInviteKey('A'.repeat(43), 'abcdefgh12').privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  });
});

describe('peer shell membership verbs', () => {
  it('runs join only with an invite key, and the others only without', () => {
    expect(peerVerb("'kvm-ferry-join'", 'abcdefgh12')).toEqual({ kind: 'join', inviteId: 'abcdefgh12' });
    expect(peerVerb("'hostname'", 'abcdefgh12')).toMatchObject({ kind: 'refused' });
    expect(peerVerb("'kvm-ferry-introduce'", 'abcdefgh12')).toMatchObject({ kind: 'refused' });
    expect(peerVerb("'kvm-ferry-join'", null)).toMatchObject({ kind: 'refused' });
    expect(peerVerb("'kvm-ferry-introduce'", null)).toEqual({ kind: 'introduce' });
    expect(peerVerb("'kvm-ferry-forget' 'gamma'", null)).toEqual({ kind: 'forget', name: 'gamma' });
    expect(peerVerb("'kvm-ferry-forget' '../x'", null)).toMatchObject({ kind: 'refused' });
    expect(peerVerb("'hostname'", null)).toEqual({ kind: 'none' });
    expect(peerVerb(undefined, null)).toEqual({ kind: 'none' });
  });
});

describe('a peer label needs the pair credential from join', () => {
  const trust = new RequestTrust('s'.repeat(40), [], '127.0.0.1', (n) => n === 'gamma' || n === 'old', (n) => (n === 'gamma' ? 'K'.repeat(43) : null));
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  it('believes peer:<name> only with the credential, and keeps hand-configured peers as before', () => {
    expect(trust.user(req({ 'x-kvm-ferry-via': 'gamma', 'x-kvm-ferry-peer-auth': 'K'.repeat(43) }))).toBe('peer:gamma');
    expect(trust.user(req({ 'x-kvm-ferry-via': 'gamma', 'x-kvm-ferry-peer-auth': 'K'.repeat(43), 'x-remote-user': 'ann' }))).toBe('peer:gamma/ann');
    expect(trust.user(req({ 'x-kvm-ferry-via': 'gamma' }))).toBeNull();
    expect(trust.user(req({ 'x-kvm-ferry-via': 'gamma', 'x-kvm-ferry-peer-auth': 'J'.repeat(43) }))).toBeNull();
    expect(trust.user(req({ 'x-kvm-ferry-via': 'old' }))).toBe('peer:old');
    expect(trust.user(req({ 'x-kvm-ferry-via': 'stranger' }))).toBeNull();
  });
});
