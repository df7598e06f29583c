import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { JoinService } from '../../src/services/join/join-service.js';
import { PeerShell } from '../../src/adapters/ssh/peer-shell.js';
import { decodeToken, encodeToken } from '../../src/domain/join/token.js';
import { startLoopbackSshd, type LoopbackSshd } from '../helpers/loopback-sshd.js';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { certFingerprint } from '../../src/adapters/files/migration-certs.js';

/** One "node": its own sshd (host key, authorized_keys), config file and data dir, all on loopback. */
interface Node {
  name: string;
  sshd: LoopbackSshd;
  config: string;
  dataDir: string;
}

const nodes: Record<string, Node> = {};
const root = mkdtempSync(join(tmpdir(), 'kf-join-'));

async function makeNode(name: string, nodeName = name): Promise<Node> {
  const sshd = await startLoopbackSshd();
  // A fresh server: no key of anyone yet.
  writeFileSync(join(sshd.dir, 'authorized_keys'), '');
  const dataDir = join(root, name);
  mkdirSync(dataDir, { recursive: true });
  const config = join(dataDir, 'config.yaml');
  writeFileSync(config, [
    `# node ${name}: a comment that must survive`,
    `nodeName: ${nodeName}`, 'listenHost: 127.0.0.1', `listenPort: ${8100 + Object.keys(nodes).length}`, `dataDir: ${dataDir}`,
    `imageDir: ${dataDir}/images`, `isoDir: ${dataDir}/iso`, `migrationTlsDir: ${dataDir}/pki`, 'join:', `  authorizedKeysFile: ${sshd.dir}/authorized_keys`,
    `  hostKeyFile: ${sshd.dir}/host_key.pub`, `  sshKeyFile: ${dataDir}/peer_ed25519`, '  addresses: [127.0.0.1]', `  sshPort: ${sshd.port}`, '',
  ].join('\n'));
  return { name, sshd, config, dataDir };
}

const service = (n: Node, now?: () => number) => {
  const c = loadConfig({ KVM_FERRY_CONFIG: n.config });
  return now ? new JoinService(c, n.config, (JoinService.open(c) as unknown as { db: never }).db, now) : JoinService.open(c);
};
const peersOf = (n: Node) => loadConfig({ KVM_FERRY_CONFIG: n.config }).peers.map((p) => p.name).sort();
const snapshot = () => Object.values(nodes).map((n) => [n.name, readFileSync(n.config, 'utf8'), readFileSync(join(n.sshd.dir, 'authorized_keys'), 'utf8')]);

async function invite(n: Node): Promise<string> {
  const s = service(n);
  try {
    return s.invite().token;
  } finally {
    s.close();
  }
}

async function joinWith(n: Node, token: string, now?: () => number): Promise<unknown> {
  const s = service(n, now);
  try {
    return await s.join(token);
  } finally {
    s.close();
  }
}

beforeAll(async () => {
  for (const n of ['a', 'b', 'c']) nodes[n] = await makeNode(n);
  nodes.dup = await makeNode('dup', 'b');
}, 30_000);
afterAll(() => Object.values(nodes).forEach((n) => n.sshd.stop()));

describe('invite / join / remove between real sshds', () => {
  it('b joins a with one token: both pin, install each other restricted, and list each other', async () => {
    const token = await invite(nodes.a!);
    expect(readFileSync(join(nodes.a!.sshd.dir, 'authorized_keys'), 'utf8')).toMatch(/^restrict,expiry-time="\d{14}Z",command=".* --join-invite [\w-]+" ssh-ed25519 \S+ kvm-ferry-invite:/);
    // The first invite made the cluster CA (a had no certificates) and a's own certificates; the token pins the CA.
    const caA = readFileSync(join(nodes.a!.dataDir, 'pki', 'ca-cert.pem'), 'utf8');
    expect((decodeToken(token) as { token: { caFingerprint: string } }).token.caFingerprint).toBe(certFingerprint(caA));
    expect(await joinWith(nodes.b!, token)).toMatchObject({ inviter: 'a', certificates: 'issued' });
    // b got the same CA and its own certificates, which verify against it and name b's address.
    for (const n of [nodes.a!, nodes.b!]) {
      const pki = join(n.dataDir, 'pki');
      expect(readFileSync(join(pki, 'ca-cert.pem'), 'utf8')).toBe(caA);
      for (const role of ['server', 'client']) {
        const out = execFileSync('openssl', ['verify', '-CAfile', join(pki, 'ca-cert.pem'), ...(role === 'server' ? ['-verify_ip', '127.0.0.1'] : []), join(pki, `${role}-cert.pem`)]).toString().trim();
        expect(out).toBe(`${join(pki, `${role}-cert.pem`)}: OK`);
        // QEMU (8.0 on, e.g. Debian 13's 10.0) refuses a certificate whose critical key usage lacks key encipherment.
        const text = execFileSync('openssl', ['x509', '-noout', '-ext', 'keyUsage', '-in', join(pki, `${role}-cert.pem`)]).toString();
        expect(text).toMatch(/critical\s+Digital Signature, Key Encipherment/);
      }
      expect(statSync(join(n.dataDir, 'migration-ca', 'ca-key.pem')).mode & 0o777).toBe(0o600);
    }
    expect(readFileSync(join(nodes.b!.dataDir, 'pki', 'server-key.pem'), 'utf8')).not.toBe(readFileSync(join(nodes.a!.dataDir, 'pki', 'server-key.pem'), 'utf8'));
    expect(peersOf(nodes.a!)).toEqual(['b']);
    expect(peersOf(nodes.b!)).toEqual(['a']);
    const akeys = readFileSync(join(nodes.a!.sshd.dir, 'authorized_keys'), 'utf8');
    expect(akeys).not.toMatch(/kvm-ferry-invite:/);
    expect(akeys).toMatch(/^restrict,port-forwarding,permitopen="127.0.0.1:8100",.*command=".*peer-shell\/main.js --config .*" ssh-ed25519 \S+ kvm-ferry-peer:b\n$/);
    const bconf = loadConfig({ KVM_FERRY_CONFIG: nodes.b!.config });
    expect(bconf.peers[0]).toMatchObject({ name: 'a', sshPort: nodes.a!.sshd.port, hostKey: nodes.a!.sshd.hostKey.split(' ').slice(0, 2).join(' '), sshKeyFile: `${nodes.b!.dataDir}/peer_ed25519` });
    expect(readFileSync(nodes.b!.config, 'utf8')).toMatch(/a comment that must survive/);
    // One shared secret for the pair, on both sides, for the manager's peer:<name> label.
    const credA = JSON.parse(readFileSync(join(nodes.a!.dataDir, 'peer-credentials.json'), 'utf8')) as Record<string, string>;
    const credB = JSON.parse(readFileSync(join(nodes.b!.dataDir, 'peer-credentials.json'), 'utf8')) as Record<string, string>;
    expect(credA.b).toMatch(/^[\w-]{43}$/);
    expect(credB.a).toBe(credA.b);
    expect(existsSync(`${nodes.b!.config}.bak`)).toBe(true);
    // b's peer key now works on a, restricted: the peer shell answers, a shell does not.
    const toA = new PeerShell(bconf.peers[0]!);
    expect((await toA.exec('hostname', [])).exitCode).toBe(0);
    const id = await toA.exec('id', [], { check: false });
    expect(id.exitCode).toBe(126);
  }, 60_000);

  it('refuses a reused, truncated, forged, expired, wrong-host-key or taken-name token and changes nothing anywhere', async () => {
    const used = await invite(nodes.a!);
    await joinWith(nodes.c!, used).then(() => undefined);
    // (c joined with that one; make the refusal cases against fresh tokens and a node that is still alone.)
    const before = snapshot();
    const reused = await joinWith(nodes.dup!, used).catch((e: Error) => e.message);
    expect(reused).toMatch(/did not accept this invite.s key: the invite was already used/);

    const fresh = await invite(nodes.a!);
    const afterInvite = snapshot();
    const t = (decodeToken(fresh) as { token: Parameters<typeof encodeToken>[0] }).token;
    expect(await joinWith(nodes.dup!, fresh.slice(0, -10)).catch((e: Error) => e.message)).toMatch(/incomplete|damaged/);
    expect(await joinWith(nodes.dup!, encodeToken({ ...t, secret: 'B'.repeat(43) })).catch((e: Error) => e.message)).toMatch(/did not accept this invite's key/);
    expect(await joinWith(nodes.dup!, encodeToken({ ...t, hostKey: nodes.a!.sshd.otherHostKey.split(' ').slice(0, 2).join(' ') })).catch((e: Error) => e.message)).toMatch(/does not match the one in the token/);
    expect(await joinWith(nodes.dup!, fresh, () => t.expiresAtMs + 1).catch((e: Error) => e.message)).toMatch(/expired/);
    // Another CA's fingerprint in an otherwise valid token: refused by a before it writes anything.
    expect(await joinWith(nodes.dup!, encodeToken({ ...t, caFingerprint: `SHA256:${'A'.repeat(43)}=` })).catch((e: Error) => e.message)).toMatch(/is not this cluster's .*the token was altered or is from another cluster/);
    // dup is named "b", which a already has.
    expect(await joinWith(nodes.dup!, fresh).catch((e: Error) => e.message)).toMatch(/"b" is already taken/);
    expect(snapshot()).toEqual(afterInvite);
    expect(before.filter(([n]) => n !== 'a')).toEqual(afterInvite.filter(([n]) => n !== 'a'));
  }, 90_000);

  it('c was introduced to b by a (N−1 joins), and remove takes it out of every member and revokes its key', async () => {
    expect(peersOf(nodes.a!)).toEqual(['b', 'c']);
    expect(peersOf(nodes.b!)).toEqual(['a', 'c']);
    expect(peersOf(nodes.c!)).toEqual(['a', 'b']);
    const cred = (n: Node) => JSON.parse(readFileSync(join(n.dataDir, 'peer-credentials.json'), 'utf8')) as Record<string, string>;
    expect(cred(nodes.c!).b).toBe(cred(nodes.b!).c);
    expect(cred(nodes.c!).a).toBe(cred(nodes.a!).c);
    expect(cred(nodes.c!).a).not.toBe(cred(nodes.c!).b);
    const cToB = loadConfig({ KVM_FERRY_CONFIG: nodes.c!.config }).peers.find((p) => p.name === 'b')!;
    expect((await new PeerShell(cToB).exec('hostname', [])).exitCode).toBe(0);

    const s = service(nodes.a!);
    const r = await s.remove('c').finally(() => s.close());
    expect(r).toEqual({ told: ['b'], unreachable: [] });
    expect(peersOf(nodes.a!)).toEqual(['b']);
    expect(peersOf(nodes.b!)).toEqual(['a']);
    for (const n of [nodes.a!, nodes.b!]) expect(readFileSync(join(n.sshd.dir, 'authorized_keys'), 'utf8')).not.toMatch(/kvm-ferry-peer:c/);
    const err = await new PeerShell(cToB).probe().catch((e: Error) => e.message);
    expect(err).toMatch(/refused the SSH login/);
  }, 60_000);
});
