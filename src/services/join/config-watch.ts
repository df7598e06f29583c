import { unwatchFile, watchFile } from 'node:fs';
import { loadConfig, type Config } from '../../config.js';
import type { Logger } from '../../log.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';

/**
 * Re-reads `peers` when the config file changes (join, remove, or an admin's edit): the
 * new list replaces the old one in the running manager. Other keys still need a restart;
 * a file that does not parse is logged and ignored (the running list stays).
 */
export function watchConfigPeers(config: Config, peers: PeerDirectory, log: Logger, intervalMs = 1000, onReload: () => void = () => undefined): () => void {
  const path = config.source;
  if (!path.startsWith('/')) return () => undefined;
  const onChange = () => {
    try {
      const next = loadConfig({ KVM_FERRY_CONFIG: path }).peers;
      if (JSON.stringify(next) === JSON.stringify(config.peers)) return;
      peers.reload(next);
      onReload();
      log.info('peers re-read from the config file', { peers: next.map((p) => p.name) });
    } catch (e) {
      log.warn('the config file changed but does not parse; the peers stay as they were', { error: (e as Error).message });
    }
  };
  watchFile(path, { interval: intervalMs }, onChange);
  return () => unwatchFile(path, onChange);
}
