import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config.js';
import { describeError } from '../../errors.js';
import type { PeerNode } from './peer-nodes.js';
import { remoteFileFact } from './plan-facts.js';
import type { PreflightCheck } from './preflight.js';

/** What QEMU reads on each side of a TLS migration (libvirt's names in the certificate directory). */
export const SOURCE_TLS_FILES = ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'] as const;
export const DESTINATION_TLS_FILES = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'] as const;

const FIX = 'make them with scripts/migration-certs.sh (README "Encrypted migration data"), or set dataTransport: plain to send it unencrypted';

/**
 * Says, before a live move, how memory and disks will travel, and refuses TLS when a
 * side lacks its certificates — QEMU would otherwise fail mid-handshake with a message
 * about x509 files.
 */
export async function dataTransportCheck(config: Config, sourceNode: string, peer: PeerNode): Promise<PreflightCheck> {
  const to = `${peer.name} (${peer.config.dataAddress})`;
  if (config.dataTransport === 'plain') {
    return { id: 'data-transport', ok: true, message: `Memory and disks go to ${to} unencrypted (dataTransport: plain); anyone on that network path can read them.` };
  }
  const dir = config.migrationTlsDir;
  const missingHere: string[] = [];
  for (const f of SOURCE_TLS_FILES) {
    await access(join(dir, f)).catch(() => missingHere.push(f));
  }
  if (missingHere.length) {
    return { id: 'data-transport', ok: false, message: `Migration data goes encrypted (dataTransport: tls), but this node (${sourceNode}) lacks ${missingHere.join(', ')} in ${dir}; ${FIX}.` };
  }
  let missingThere: string[];
  try {
    // Asked at once: the questions share the peer's one SSH connection.
    const facts = await Promise.all(DESTINATION_TLS_FILES.map((f) => remoteFileFact(peer, join(dir, f))));
    missingThere = DESTINATION_TLS_FILES.filter((_, i) => facts[i]!.kind !== 'file');
  } catch (e) {
    return { id: 'data-transport', ok: false, message: `Could not check ${peer.name}'s migration certificates in ${dir}: ${describeError(e)}` };
  }
  if (missingThere.length) {
    return { id: 'data-transport', ok: false, message: `Migration data goes encrypted (dataTransport: tls), but ${peer.name} lacks ${missingThere.join(', ')} in ${dir}; ${FIX}.` };
  }
  return { id: 'data-transport', ok: true, message: `Memory and disks go to ${to} encrypted (TLS); ${peer.name} accepts only a node with a certificate from the cluster's CA.` };
}
