import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { parseConfig, type PeerConfig } from '../../config.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * Rewrites only `peers:` of the config file (comments and every other key stay as they
 * are), checks the result parses as a valid config before anything is written, and
 * replaces the file atomically with the old one kept as FILE.bak. The config stays the
 * single source of truth: the running manager watches it and re-reads peers.
 */
export function updateConfigPeers(path: string, change: (peers: PeerConfig[]) => PeerConfig[]): PeerConfig[] {
  const text = readFileSync(path, 'utf8');
  const doc = parseDocument(text);
  const current = parseConfig(doc.toJS() ?? {}).peers;
  const next = change(current.map((p) => ({ ...p })));
  doc.set('peers', doc.createNode(next.map((p) => ({ ...p }))));
  const out = doc.toString({ lineWidth: 0 });
  parseConfig(parseDocument(out).toJS());
  writeFileAtomic(path, out, { backup: true });
  return next;
}
