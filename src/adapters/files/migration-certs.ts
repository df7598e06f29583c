import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';

/**
 * The cluster's migration CA and a node's certificates for QEMU's TLS migration, made with
 * openssl (argv arrays, never a shell) the way scripts/migration-certs.sh makes them: ECDSA
 * P-256, the server certificate naming the node and every address peers send data to.
 *
 * The CA's key lives in <dataDir>/migration-ca/ (0600, root) on every member, so any member
 * can invite: a member is trusted with the cluster's migrations anyway (it holds a
 * certificate and reaches every peer's restricted account). libvirt reads the node's files
 * from migrationTlsDir, where QEMU (user libvirt-qemu) must be able to read them.
 */
export const CA_DIR = 'migration-ca';
const OPENSSL_TIMEOUT_MS = 30_000;

export interface ClusterCa {
  certPem: string;
  keyPem: string;
}

export const caDirOf = (dataDir: string) => join(dataDir, CA_DIR);

/** The CA this node can issue with, or null (none yet, or certificates made by hand without the key here). */
export function readClusterCa(dataDir: string): ClusterCa | null {
  const dir = caDirOf(dataDir);
  try {
    return { certPem: readFileSync(join(dir, 'ca-cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'ca-key.pem'), 'utf8') };
  } catch {
    return null;
  }
}

/** SHA256:<base64> of a PEM certificate, as invite tokens carry it. */
export function certFingerprint(pem: string): string {
  return `SHA256:${Buffer.from(new X509Certificate(pem).fingerprint256.replace(/:/g, ''), 'hex').toString('base64')}`;
}

/** A new CA in <dataDir>/migration-ca/. */
export function createClusterCa(dataDir: string, nodeName: string): ClusterCa {
  const dir = caDirOf(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  openssl(['req', '-x509', ...KEY_OPTS, '-keyout', join(dir, 'ca-key.pem'), '-out', join(dir, 'ca-cert.pem'), '-days', '3650',
    '-subj', `/CN=kvm-ferry migration CA ${nodeName} ${stamp}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  chmodSync(join(dir, 'ca-key.pem'), 0o600);
  return readClusterCa(dataDir)!;
}

/** Keeps a CA received at join (its fingerprint already checked against the token). */
export function storeClusterCa(dataDir: string, ca: ClusterCa): void {
  const dir = caDirOf(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
  writeFileAtomic(join(dir, 'ca-cert.pem'), ca.certPem, { mode: 0o644 });
}

const KEY_OPTS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Issues this node's server and client certificates into tlsDir, with the CA's certificate
 * beside them (libvirt's names: ca-cert.pem, server-*.pem, client-*.pem). The server
 * certificate names the node and every address a peer sends migration data to: the source
 * checks the destination's certificate against that address.
 */
export function issueNodeCertificates(ca: ClusterCa, tlsDir: string, nodeName: string, addresses: string[]): void {
  const work = mkdtempSync(join(tmpdir(), 'kvm-ferry-certs-'));
  try {
    const caCert = join(work, 'ca-cert.pem');
    const caKey = join(work, 'ca-key.pem');
    writeFileSync(caCert, ca.certPem);
    writeFileSync(caKey, ca.keyPem, { mode: 0o600 });
    const san = [`DNS:${nodeName}`, ...addresses.map((a) => (/^[0-9.]+$/.test(a) || a.includes(':') ? `IP:${a}` : `DNS:${a}`))].join(',');
    const out: Record<string, string> = { 'ca-cert.pem': ca.certPem };
    for (const role of ['server', 'client'] as const) {
      const key = join(work, `${role}-key.pem`);
      const csr = join(work, `${role}.csr`);
      const ext = join(work, `${role}.ext`);
      const cert = join(work, `${role}-cert.pem`);
      openssl(['req', ...KEY_OPTS, '-keyout', key, '-out', csr, '-subj', `/CN=${nodeName}`]);
      writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${role === 'server' ? 'serverAuth' : 'clientAuth'}\nsubjectKeyIdentifier=hash\nsubjectAltName=${role === 'server' ? san : `DNS:${nodeName}`}\n`);
      openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-days', '825', '-sha256', '-extfile', ext, '-out', cert]);
      out[`${role}-key.pem`] = readFileSync(key, 'utf8');
      out[`${role}-cert.pem`] = readFileSync(cert, 'utf8');
    }
    installForQemu(tlsDir, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** True when tlsDir holds a full set for both roles. */
export function hasNodeCertificates(tlsDir: string): boolean {
  return ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem'].every((f) => existsSync(join(tlsDir, f)));
}

/** Mode 0640 and group libvirt-qemu (QEMU reads the keys itself); root-only when that group does not exist. */
function installForQemu(dir: string, files: Record<string, string>): void {
  const gid = groupId('libvirt-qemu');
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  if (gid !== null) chownSync(dir, 0, gid);
  chmodSync(dir, 0o750);
  for (const [name, text] of Object.entries(files)) {
    const p = join(dir, name);
    writeFileAtomic(p, text, { mode: 0o640 });
    if (gid !== null) chownSync(p, 0, gid);
  }
}

function groupId(name: string): number | null {
  try {
    const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
    const gid = line ? Number(line.split(':')[2]) : NaN;
    return Number.isInteger(gid) ? gid : null;
  } catch {
    return null;
  }
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() || err.message}`);
  }
}
