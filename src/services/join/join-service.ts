/**
 * invite / join / remove (README "Deploy on your servers").
 *
 * Bootstrap: the joiner has no key on the inviter yet. The invite installs a bootstrap
 * key whose private half is derived from the token's secret (adapters/ssh/derived-key.ts)
 * with `restrict,expiry-time=…,command="kvm-ferry-peer-shell … --join-invite ID"`: sshd
 * needs no password login and no extra account, refuses the key after expiry by itself,
 * and the forced command runs only the join verb, which checks the secret's hash in
 * SQLite (single use). The joiner pins the inviter's host key from the token before it
 * authenticates, so nothing is trusted on first contact. Only the inviter must be
 * reachable (the joiner opens the connection); afterwards each side reaches the other
 * at the address it announced (through NAT: the tunnel address).
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import type { Config, PeerConfig } from '../../config.js';
import { openDatabase, type Db } from '../../adapters/db/database.js';
import { InvitesRepository } from '../../adapters/db/invites-repository.js';
import { deriveInviteKey } from '../../adapters/ssh/derived-key.js';
import { ensurePeerKey } from '../../adapters/ssh/keygen.js';
import { PeerShell } from '../../adapters/ssh/peer-shell.js';
import { readIfExists, writeFileAtomic } from '../../adapters/files/atomic-file.js';
import { updateConfigPeers } from '../../adapters/files/config-peers.js';
import { CREDENTIAL_RE, setPeerCredential } from '../../adapters/files/peer-credentials.js';
import { migrationCaFingerprint } from '../../adapters/files/ca-fingerprint.js';
import { certFingerprint, createClusterCa, hasNodeCertificates, issueNodeCertificates, readClusterCa, storeClusterCa, type ClusterCa } from '../../adapters/files/migration-certs.js';
import { AppError } from '../../errors.js';
import { decodeToken, encodeToken, type InviteToken } from '../../domain/join/token.js';
import {
  checkClusterCa, checkInviterAnswer, decideJoin, pruneInviteLines, inviteKeyLine, inviteKeyTag, parsePeerInfo, peerConfigFor, peerKeyLine, peerKeyTag, plainKey, replaceKeyLines,
  type ForcedCommand, type PeerInfo,
} from '../../domain/join/decisions.js';
import { isValidNodeName } from '../../domain/names.js';

export const DEFAULT_TTL_MS = 15 * 60_000;
const MAX_STDIN = 256 * 1024;

export class JoinRefused extends AppError {
  constructor(message: string, detail?: string) {
    super('BAD_INPUT', message, detail ? { detail } : {});
  }
}

const refuse = (message: string, detail?: string): never => {
  throw new JoinRefused(message, detail);
};

/** The peer shell this install runs as forced command: this checkout's dist, the node binary running us. */
export function forcedCommandFor(configFile: string): ForcedCommand {
  // The installed checkout's build, also when this code runs from src/ (tests): the root is where package.json is.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return { nodeBin: process.execPath, peerShell: resolve(dir, 'dist/src/peer-shell/main.js'), configFile };
}

export interface JoinResult {
  inviter: string;
  peers: string[];
  /** This node's migration certificates: issued from the cluster CA the inviter sent, kept (already from it), none sent, or failed. */
  certificates: 'issued' | 'kept' | 'none' | 'failed';
  certificateProblem?: string;
}

export class JoinService {
  private readonly invites: InvitesRepository;

  constructor(
    private config: Config,
    private readonly configPath: string,
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {
    this.invites = new InvitesRepository(db);
  }

  static open(config: Config): JoinService {
    if (!config.source.startsWith('/')) refuse('invite/join/remove need a config file (set KVM_FERRY_CONFIG or create /etc/kvm-ferry/config.yaml): the peers are written there.');
    return new JoinService(config, config.source, openDatabase(join(config.dataDir, 'kvm-ferry.sqlite')));
  }

  private get fc(): ForcedCommand {
    return forcedCommandFor(this.configPath);
  }

  private reloadConfig(peers: PeerConfig[]): void {
    this.config = { ...this.config, peers };
  }

  /** What this node tells others about itself. */
  selfInfo(address?: string): PeerInfo {
    const c = this.config;
    const addr = address ?? c.join.addresses[0] ?? (isWildcardOrLoopback(c.listenHost) ? null : c.listenHost);
    if (!addr) refuse('This node does not know the address other nodes reach it at; set join.addresses in the config (or pass --address).');
    const hostKey = plainKey(readFileOr(c.join.hostKeyFile, `This node's SSH host key ${c.join.hostKeyFile} cannot be read; set join.hostKeyFile.`));
    if (!hostKey) refuse(`${c.join.hostKeyFile} does not hold an SSH public key; set join.hostKeyFile.`);
    const peerKey = plainKey(ensurePeerKey(c.join.sshKeyFile, `kvm-ferry@${c.nodeName}`))!;
    const info: PeerInfo = {
      name: c.nodeName, peerKey, hostKey: hostKey!, address: addr!, sshPort: c.join.sshPort,
      managerHost: isWildcardOrLoopback(c.listenHost) ? '127.0.0.1' : c.listenHost, managerPort: c.listenPort,
    };
    if (c.join.url) info.url = c.join.url;
    return info;
  }

  /**
   * Before anything is written or asked: can this process write the config and authorized_keys?
   * The manager under its systemd unit cannot (ProtectSystem/ProtectHome), the CLI as root can.
   */
  private assertWritable(): void {
    const c = this.config;
    const certs = c.dataTransport === 'tls' ? [join(c.migrationTlsDir, 'ca-cert.pem'), join(c.dataDir, 'migration-ca', 'ca-cert.pem')] : [];
    for (const p of [this.configPath, c.join.authorizedKeysFile, ...certs]) {
      // The file, and the nearest directory that exists (a missing one is made there).
      let dir = dirname(p);
      while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
      try {
        if (existsSync(p)) accessSync(p, constants.W_OK);
        accessSync(dir, constants.W_OK);
      } catch {
        refuse(`This process may not write ${p} (a manager under its systemd unit keeps it read-only); run the kvm-ferry command as root on this node instead.`);
      }
    }
  }

  /** Makes an invite: a DB row with the secret's hash, the bootstrap key line, and the token. */
  invite(opts: { ttlMs?: number; addresses?: string[] } = {}): { token: string; expiresAtMs: number; id: string; certificatesIssued: boolean } {
    this.assertWritable();
    const me = this.selfInfo(opts.addresses?.[0]);
    const addresses = opts.addresses?.length ? opts.addresses : [me.address, ...this.config.join.addresses.filter((a) => a !== me.address)];
    const certificatesIssued = this.ensureIssuer(addresses);
    const id = randomBytes(9).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const created = this.now();
    const expiresAtMs = created + (opts.ttlMs ?? DEFAULT_TTL_MS);
    const t: InviteToken = { id, node: me.name, managerPort: me.managerPort, addresses, sshPort: me.sshPort, hostKey: me.hostKey, caFingerprint: migrationCaFingerprint(this.config.migrationTlsDir), secret, expiresAtMs };
    const key = deriveInviteKey(secret, id);
    this.invites.add(id, secret, created, expiresAtMs);
    // Lines of used or expired invites go too (sshd already refuses the expired ones).
    const live = new Set(this.invites.active(created).map((i) => i.id));
    this.editAuthorizedKeys((text) => replaceKeyLines(pruneInviteLines(text, live), { tag: inviteKeyTag(id) }, [inviteKeyLine(id, key.publicKey, expiresAtMs, this.fc)]));
    return { token: encodeToken(t), expiresAtMs, id, certificatesIssued };
  }

  /** The joiner's side: `kvm-ferry node join <token>`. */
  async join(tokenText: string, opts: { address?: string } = {}): Promise<JoinResult> {
    const decoded = decodeToken(tokenText);
    if (!decoded.ok) refuse(decoded.reason);
    const t = (decoded as { token: InviteToken }).token;
    if (this.now() >= t.expiresAtMs) refuse(`This invite expired at ${new Date(t.expiresAtMs).toISOString()}; make a new one on ${t.node}.`);
    const c = this.config;
    if (t.node === c.nodeName) refuse(`This token was made by this node (${c.nodeName}); paste it on the new node instead.`);
    this.assertWritable();
    const ca = checkClusterCa(t.caFingerprint, migrationCaFingerprint(c.migrationTlsDir));
    if (!ca.ok) refuse(ca.reason);
    if (c.peers.length > 0) refuse(`This node already belongs to a cluster (peers: ${c.peers.map((p) => p.name).join(', ')}); remove it from there first.`);
    const me = this.selfInfo(opts.address);
    const key = deriveInviteKey(t.secret, t.id);
    const keyFile = join(c.dataDir, `.invite-${t.id}.key`);
    writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    let answerText = '';
    let usedAddress = '';
    try {
      ({ stdout: answerText, address: usedAddress } = await this.askInviter(t, keyFile, JSON.stringify({ secret: t.secret, joiner: me, caFingerprint: t.caFingerprint })));
    } finally {
      rmSync(keyFile, { force: true });
    }
    let raw: { inviter?: unknown; peers?: unknown; ca?: unknown };
    try {
      raw = JSON.parse(answerText) as typeof raw;
    } catch {
      return refuse(`${t.node} gave an answer this node cannot read; nothing was written here.`, answerText.slice(0, 2000));
    }
    const inviter = parsePeerInfo(raw.inviter, 'The inviting node');
    if ('error' in inviter) return refuse(inviter.error);
    const peers: PeerInfo[] = [];
    const credentials = new Map<string, string>();
    const credentialOf = (o: unknown) => {
      const v = (o as { credential?: unknown } | null)?.credential;
      return typeof v === 'string' && CREDENTIAL_RE.test(v) ? v : null;
    };
    if (credentialOf(raw.inviter)) credentials.set(inviter.name, credentialOf(raw.inviter)!);
    for (const p of Array.isArray(raw.peers) ? raw.peers : []) {
      const info = parsePeerInfo(p, 'A member named by the inviting node');
      if ('error' in info) return refuse(info.error);
      peers.push(info);
      if (credentialOf(p)) credentials.set(info.name, credentialOf(p)!);
    }
    const ok = checkInviterAnswer(t.node, inviter, t.hostKey, c.nodeName, peers);
    if (!ok.ok) refuse(ok.reason);
    const clusterCa = receivedCa(raw, t.caFingerprint, t.node);
    // Reach the inviter where this node just reached it (e.g. its tunnel address), not where it thinks it is.
    const all = [{ ...inviter, address: usedAddress }, ...peers];
    this.addPeers(all);
    for (const [name, cred] of credentials) setPeerCredential(c.dataDir, name, cred);
    let certificates: JoinResult['certificates'] = 'none';
    let certificateProblem: string | undefined;
    if (clusterCa) {
      // The members hold this node now: a failure here must not undo the join, it is said instead.
      try {
        certificates = this.installCluster(clusterCa, [me.address, ...c.join.addresses]);
      } catch (e) {
        certificates = 'failed';
        certificateProblem = `This node's migration certificates could not be made in ${c.migrationTlsDir} (${(e as Error).message.split('\n')[0]}); make them with scripts/migration-certs.sh, or set dataTransport: plain.`;
      }
    }
    return { inviter: inviter.name, peers: peers.map((p) => p.name), certificates, ...(certificateProblem ? { certificateProblem } : {}) };
  }

  /**
   * The inviter can issue certificates when it holds the cluster CA's key; a node with
   * neither a CA nor certificates makes the CA at its first invite (and its own
   * certificates). Certificates made by hand (scripts/migration-certs.sh, the CA key kept
   * elsewhere) stay as they are: joiners then get theirs the same way.
   */
  private ensureIssuer(addresses: string[]): boolean {
    const c = this.config;
    if (c.dataTransport !== 'tls') return false;
    let ca = readClusterCa(c.dataDir);
    const installed = migrationCaFingerprint(c.migrationTlsDir);
    if (!ca && installed) return false;
    try {
      ca ??= createClusterCa(c.dataDir, c.nodeName);
      if (hasNodeCertificates(c.migrationTlsDir) && installed === certFingerprint(ca.certPem)) return false;
      issueNodeCertificates(ca, c.migrationTlsDir, c.nodeName, unique(addresses));
      return true;
    } catch (e) {
      return refuse(`Could not make the cluster's migration certificates in ${c.migrationTlsDir} (${(e as Error).message.split('\n')[0]}); fix that, or set dataTransport: plain.`, (e as Error).message);
    }
  }

  /** The joiner keeps the cluster CA (so it can invite too) and issues its own certificates for its addresses. */
  private installCluster(ca: ClusterCa, addresses: string[]): 'issued' | 'kept' {
    const c = this.config;
    storeClusterCa(c.dataDir, ca);
    if (hasNodeCertificates(c.migrationTlsDir) && migrationCaFingerprint(c.migrationTlsDir) === certFingerprint(ca.certPem)) return 'kept';
    issueNodeCertificates(ca, c.migrationTlsDir, c.nodeName, unique(addresses));
    return 'issued';
  }

  private async askInviter(t: InviteToken, keyFile: string, body: string): Promise<{ stdout: string; address: string }> {
    let last: AppError | null = null;
    for (const address of t.addresses) {
      const shell = new PeerShell({
        name: t.node, sshHost: address, sshPort: t.sshPort, sshUser: 'root', sshKeyFile: keyFile, hostKey: t.hostKey,
        dataAddress: address, managerHost: '127.0.0.1', managerPort: t.managerPort,
      });
      let r;
      try {
        r = await shell.exec('kvm-ferry-join', [], { check: false, timeoutMs: 120_000, stdin: Readable.from([body]) });
      } catch (e) {
        const err = e as AppError;
        if (/refused the SSH login/.test(err.message)) {
          refuse(`${t.node} did not accept this invite's key: the invite was already used, has expired or was withdrawn, or the token was altered.`, err.detail);
        }
        if (/host key does not match/.test(err.message)) refuse(`${t.node}'s SSH host key at ${address} does not match the one in the token; refusing to join (the connection may be intercepted).`, err.detail);
        last = err;
        continue;
      }
      if (r.exitCode !== 0) {
        const sentence = r.stderr.trim().split('\n').pop()?.replace(/^kvm-ferry-peer-shell: /, '') || `${t.node} refused the join.`;
        refuse(sentence, r.stderr.slice(0, 4000));
      }
      return { stdout: r.stdout, address };
    }
    return refuse(`${t.node} could not be reached at ${t.addresses.join(', ')} (port ${t.sshPort}); the inviting node must be reachable from this one.`, last?.detail ?? last?.message);
  }

  /** The inviter's side of a join (the peer shell's join verb, run by the bootstrap key). */
  async handleJoin(inviteId: string, stdin: string): Promise<string> {
    let req: { secret?: unknown; joiner?: unknown; caFingerprint?: unknown };
    try {
      req = JSON.parse(stdin) as typeof req;
    } catch {
      return refuse('The join request is not readable.');
    }
    // A token whose CA fingerprint was changed on the way is refused here, before anything is
    // written, rather than by the joiner after this node has taken it in.
    const ownCa = migrationCaFingerprint(this.config.migrationTlsDir);
    if (typeof req.caFingerprint === 'string' && req.caFingerprint !== ownCa) refuse(`The token's migration CA (${req.caFingerprint || 'none'}) is not this cluster's (${ownCa || 'none'}); the token was altered or is from another cluster.`);
    const joiner = parsePeerInfo(req.joiner, 'The new node');
    if ('error' in joiner) return refuse(joiner.error);
    const invite = this.invites.get(inviteId);
    const c = this.config;
    const hostKey = plainKey(readFileOr(c.join.hostKeyFile, `This node's SSH host key ${c.join.hostKeyFile} cannot be read.`)) ?? '';
    const verdict = decideJoin({
      invite, secretMatches: this.invites.secretMatches(invite, req.secret), now: this.now(), localName: c.nodeName,
      peerNames: c.peers.map((p) => p.name), joiner, localHostKey: hostKey, peerHostKeys: c.peers.map((p) => p.hostKey),
    });
    if (!verdict.ok) return refuse(verdict.reason);
    if (!this.invites.claim(inviteId, joiner.name, this.now())) refuse('This invite was already used; make a new one with "kvm-ferry node invite".');
    const me = this.selfInfo();
    // Introduce the new node to every member; the inviter vouches for each member's host key it pinned.
    const introduced: PeerConfig[] = [];
    const vouched: PeerInfo[] = [];
    try {
      for (const p of c.peers) {
        const r = await new PeerShell(p).exec('kvm-ferry-introduce', [], { check: false, timeoutMs: 60_000, stdin: Readable.from([JSON.stringify({ joiner })]) });
        if (r.exitCode !== 0) refuse(`Member ${p.name} refused the new node: ${r.stderr.trim().split('\n').pop()?.replace(/^kvm-ferry-peer-shell: /, '') ?? 'no reason given'}`);
        introduced.push(p);
        const answer = JSON.parse(r.stdout) as { peerKey?: unknown; url?: unknown; credential?: unknown };
        const peerKey = typeof answer.peerKey === 'string' ? plainKey(answer.peerKey) : null;
        if (!peerKey) refuse(`Member ${p.name} did not say its peer key.`);
        const info: PeerInfo = { name: p.name, peerKey: peerKey!, hostKey: p.hostKey, address: p.sshHost, sshPort: p.sshPort, managerHost: p.managerHost, managerPort: p.managerPort };
        if (p.url) info.url = p.url;
        vouched.push(typeof answer.credential === 'string' && CREDENTIAL_RE.test(answer.credential) ? { ...info, credential: answer.credential } as PeerInfo : info);
      }
    } catch (e) {
      // Undo what the members already wrote, and give the invite back: the join did not happen.
      for (const p of introduced) await new PeerShell(p).exec('kvm-ferry-forget', [joiner.name], { check: false, timeoutMs: 30_000 }).catch(() => undefined);
      this.invites.unclaim(inviteId);
      throw e;
    }
    this.editAuthorizedKeys((text) => replaceKeyLines(replaceKeyLines(text, { tag: inviteKeyTag(inviteId) }), { tag: peerKeyTag(joiner.name) }, [peerKeyLine(joiner, { host: me.managerHost, port: me.managerPort }, this.fc)]));
    this.reloadConfig(updateConfigPeers(this.configPath, (peers) => [...peers, peerConfigFor(joiner, c.join.sshKeyFile)]));
    const credential = newCredential();
    setPeerCredential(c.dataDir, joiner.name, credential);
    // The cluster CA goes to the new node over this pinned, token-authenticated channel; it
    // checks it against the fingerprint in its token and issues its own certificates.
    const ca = c.dataTransport === 'tls' ? readClusterCa(c.dataDir) : null;
    return JSON.stringify({ inviter: { ...me, credential }, peers: vouched, ...(ca ? { ca: { cert: ca.certPem, key: ca.keyPem } } : {}) });
  }

  /** A member's side of an introduction (peer shell verb, run by the inviter's peer key). */
  handleIntroduce(stdin: string): string {
    let req: { joiner?: unknown };
    try {
      req = JSON.parse(stdin) as typeof req;
    } catch {
      return refuse('The introduction is not readable.');
    }
    const joiner = parsePeerInfo(req.joiner, 'The new node');
    if ('error' in joiner) return refuse(joiner.error);
    const c = this.config;
    if (joiner.name === c.nodeName || c.peers.some((p) => p.name === joiner.name)) refuse(`The node name "${joiner.name}" is already taken in this cluster.`);
    const me = this.selfInfo();
    this.addPeers([joiner]);
    const credential = newCredential();
    setPeerCredential(c.dataDir, joiner.name, credential);
    return JSON.stringify({ peerKey: me.peerKey, credential, ...(me.url ? { url: me.url } : {}) });
  }

  /** `kvm-ferry node remove NAME`: out of every member's config and authorized_keys, then out of this node's. */
  async remove(name: string): Promise<{ told: string[]; unreachable: string[] }> {
    if (!isValidNodeName(name)) refuse(`"${name}" is not a node name.`);
    const c = this.config;
    if (name === c.nodeName) refuse('A node cannot remove itself; run remove on another member.');
    if (!c.peers.some((p) => p.name === name)) refuse(`${name} is not a peer of this node.`);
    this.assertWritable();
    const told: string[] = [];
    const unreachable: string[] = [];
    for (const p of c.peers.filter((q) => q.name !== name)) {
      const r = await new PeerShell(p).exec('kvm-ferry-forget', [name], { check: false, timeoutMs: 30_000 }).catch(() => null);
      (r && r.exitCode === 0 ? told : unreachable).push(p.name);
    }
    this.handleForget(name);
    return { told, unreachable };
  }

  /** Forget a node: its peers[] entry and its key line go. Idempotent. */
  handleForget(name: string): string {
    if (!isValidNodeName(name)) refuse(`"${name}" is not a node name.`);
    const gone = this.config.peers.find((p) => p.name === name);
    this.editAuthorizedKeys((text) => replaceKeyLines(text, { tag: peerKeyTag(name) }));
    setPeerCredential(this.config.dataDir, name, null);
    if (gone) this.reloadConfig(updateConfigPeers(this.configPath, (peers) => peers.filter((p) => p.name !== name)));
    return JSON.stringify({ forgot: name });
  }

  activeInvites(): { id: string; expiresAtMs: number }[] {
    return this.invites.active(this.now());
  }

  private addPeers(infos: PeerInfo[]): void {
    const fc = this.fc;
    const me = this.selfInfo();
    this.editAuthorizedKeys((text) => {
      let out = text;
      for (const i of infos) out = replaceKeyLines(out, { tag: peerKeyTag(i.name) });
      return replaceKeyLines(out, {}, infos.map((i) => peerKeyLine(i, { host: me.managerHost, port: me.managerPort }, fc)));
    });
    this.reloadConfig(updateConfigPeers(this.configPath, (peers) => [...peers.filter((p) => !infos.some((i) => i.name === p.name)), ...infos.map((i) => peerConfigFor(i, this.config.join.sshKeyFile))]));
  }

  private editAuthorizedKeys(change: (text: string) => string): void {
    const f = this.config.join.authorizedKeysFile;
    writeFileAtomic(f, change(readIfExists(f)), { backup: true });
  }

  close(): void {
    this.db.close();
  }
}

/** The pair's shared secret that proves a forwarded request's `peer:<name>` label (web/proxy-trust.ts). */
const newCredential = () => randomBytes(32).toString('base64url');

function isWildcardOrLoopback(h: string): boolean {
  return h === '0.0.0.0' || h === '::' || h === '' || h === 'localhost' || h.startsWith('127.') || h === '::1';
}

function readFileOr(path: string, message: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return refuse(message);
  }
}

export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  let s = '';
  for await (const chunk of stream) {
    s += chunk.toString();
    if (s.length > MAX_STDIN) refuse('The request on stdin is too large.');
  }
  return s;
}

const unique = (xs: string[]) => [...new Set(xs.filter(Boolean))];

/** The CA in an inviter's answer, only if it is the one the token names. */
function receivedCa(raw: { ca?: unknown }, tokenFp: string, inviter: string): ClusterCa | null {
  const ca = raw.ca as { cert?: unknown; key?: unknown } | undefined;
  if (!ca || typeof ca.cert !== 'string' || typeof ca.key !== 'string') return null;
  let fp = '';
  try {
    fp = certFingerprint(ca.cert);
  } catch {
    return refuse(`${inviter} sent a migration CA certificate that cannot be read; nothing was written here.`);
  }
  if (!tokenFp || fp !== tokenFp) refuse(`${inviter} sent a migration CA (${fp}) that is not the one in the token (${tokenFp || 'none'}); refusing to install it.`);
  if (!/^-----BEGIN [A-Z ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z ]*PRIVATE KEY-----\s*$/.test(ca.key)) refuse(`${inviter} sent a migration CA key that cannot be read; nothing was written here.`);
  return { certPem: ca.cert, keyPem: ca.key };
}
