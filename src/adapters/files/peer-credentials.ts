import { join } from 'node:path';
import { readIfExists, writeFileAtomic } from './atomic-file.js';

/**
 * One shared secret per pair of nodes, made at join (or introduction) and kept by both in
 * <dataDir>/peer-credentials.json (0600, never in the config, never logged). A manager
 * sends it with every request it forwards to that peer; the peer believes the request's
 * `peer:<name>` label only with it (web/proxy-trust.ts).
 */
const file = (dataDir: string) => join(dataDir, 'peer-credentials.json');
export const CREDENTIAL_RE = /^[A-Za-z0-9_-]{43}$/;

export function readPeerCredentials(dataDir: string): Record<string, string> {
  try {
    const o = JSON.parse(readIfExists(file(dataDir)) || '{}') as Record<string, unknown>;
    return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string' && CREDENTIAL_RE.test(e[1])));
  } catch {
    return {};
  }
}

export function setPeerCredential(dataDir: string, name: string, credential: string | null): void {
  const all = readPeerCredentials(dataDir);
  if (credential === null) delete all[name];
  else all[name] = credential;
  writeFileAtomic(file(dataDir), `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
}
