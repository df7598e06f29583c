import { join } from 'node:path';
import { openDatabase, type Db } from './database.js';
import { STATS_MIGRATIONS } from './stats-migrations.js';

export const STATS_DB_FILE = 'stats.sqlite';

/** stats.sqlite next to kvm-ferry.sqlite: written by the stats daemon, read by the manager. */
export function openStatsDatabase(dataDir: string): Db {
  return openDatabase(join(dataDir, STATS_DB_FILE), STATS_MIGRATIONS);
}
