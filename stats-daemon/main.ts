import '../src/threadpool.js';
import cron from 'node-cron';
import { mkdirSync } from 'node:fs';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { openStatsDatabase } from '../src/adapters/db/stats-db.js';
import { StatsWriter } from '../src/adapters/db/stats-writer.js';
import { StatsDaemon } from './daemon.js';
import { describeIoSource, makeSampler } from './make-sampler.js';

/** The stats daemon: its own process, so a slow libvirt call never stalls the web app. */
async function main(): Promise<void> {
  const log = createLogger({ level: process.env.KVM_FERRY_LOG_LEVEL === 'debug' ? 'debug' : 'info', base: { proc: 'stats' } });
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`kvm-ferry-stats: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const { stats } = config;
  mkdirSync(config.dataDir, { recursive: true });
  const db = openStatsDatabase(config.dataDir);
  const daemon = new StatsDaemon(makeSampler(stats.source, config.libvirtUri, stats.intervalSec, config.libvirtTimeoutSec * 1000), new StatsWriter(db, stats), log);
  // A first tick at once primes the CPU deltas and catches up rollups missed while stopped.
  await daemon.tick(Date.now());
  const task = cron.schedule(`*/${stats.intervalSec} * * * * *`, async () => {
    await daemon.tick(Date.now());
  }, { noOverlap: true, name: 'stats-sample' });
  log.info('stats daemon sampling', { source: stats.source, io: describeIoSource(stats.source), intervalSec: stats.intervalSec, libvirt: config.libvirtUri, dataDir: config.dataDir });

  const stop = (signal: string) => {
    log.info('stats daemon stopping', { signal });
    void task.stop();
    void daemon.close().finally(() => {
      db.close();
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`kvm-ferry-stats: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
