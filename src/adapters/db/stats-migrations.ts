import type { Migration } from './database.js';

/**
 * Schema of stats.sqlite (a file of its own, so the daemon's writes every 5 s never contend
 * with the manager's jobs table). Numbered, append-only like migrations.ts.
 */
export const STATS_MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
      -- The thesis's table and index, kept for compatibility: one row per VM per sample.
      -- DateTime holds Unix seconds (UTC): datetime(DateTime, 'unixepoch') gives the text form.
      -- Cpu is % of the VM's vCPUs (one decimal), Ram is MiB. Kept for rawRetentionHours.
      CREATE TABLE Data (VMname TEXT, DateTime DATETIME, Cpu INT, Ram INT);
      CREATE INDEX name_date ON Data (VMname, DateTime);

      -- Small integer keys for the rollups; history is per VM name on this node.
      CREATE TABLE stat_vm (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        uuid TEXT,
        ram_kind TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
      );

      -- t = minute (or hour) number since the epoch; cpu_* in tenths of a percent, ram_* in MiB;
      -- n = samples behind the row, to weight averages of averages.
      CREATE TABLE stat_minute (
        vm INTEGER NOT NULL, t INTEGER NOT NULL,
        cpu_avg INTEGER, cpu_max INTEGER, ram_avg INTEGER NOT NULL, ram_max INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (vm, t)
      ) WITHOUT ROWID;
      CREATE TABLE stat_hour (
        vm INTEGER NOT NULL, t INTEGER NOT NULL,
        cpu_avg INTEGER, cpu_max INTEGER, ram_avg INTEGER NOT NULL, ram_max INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (vm, t)
      ) WITHOUT ROWID;

      -- Rollup progress (last complete minute/hour rolled), so a restarted daemon catches up.
      CREATE TABLE stat_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `,
  },
  {
    version: 2,
    // Disk and network rates (issue 15). Raw rows: bytes/s, operations/s, packets/s as REAL,
    // NULL where the source had no delta yet. Rollups: rounded averages plus io_n, the number of
    // samples that had I/O, so hour averages weight minutes correctly.
    sql: `
      ALTER TABLE Data ADD COLUMN DiskRd REAL;
      ALTER TABLE Data ADD COLUMN DiskWr REAL;
      ALTER TABLE Data ADD COLUMN DiskRdOps REAL;
      ALTER TABLE Data ADD COLUMN DiskWrOps REAL;
      ALTER TABLE Data ADD COLUMN NetIn REAL;
      ALTER TABLE Data ADD COLUMN NetOut REAL;
      ALTER TABLE Data ADD COLUMN NetInPkts REAL;
      ALTER TABLE Data ADD COLUMN NetOutPkts REAL;
      ALTER TABLE stat_minute ADD COLUMN disk_rd INTEGER;
      ALTER TABLE stat_minute ADD COLUMN disk_wr INTEGER;
      ALTER TABLE stat_minute ADD COLUMN disk_rd_ops INTEGER;
      ALTER TABLE stat_minute ADD COLUMN disk_wr_ops INTEGER;
      ALTER TABLE stat_minute ADD COLUMN net_in INTEGER;
      ALTER TABLE stat_minute ADD COLUMN net_out INTEGER;
      ALTER TABLE stat_minute ADD COLUMN net_in_pkts INTEGER;
      ALTER TABLE stat_minute ADD COLUMN net_out_pkts INTEGER;
      ALTER TABLE stat_hour ADD COLUMN disk_rd INTEGER;
      ALTER TABLE stat_hour ADD COLUMN disk_wr INTEGER;
      ALTER TABLE stat_hour ADD COLUMN disk_rd_ops INTEGER;
      ALTER TABLE stat_hour ADD COLUMN disk_wr_ops INTEGER;
      ALTER TABLE stat_hour ADD COLUMN net_in INTEGER;
      ALTER TABLE stat_hour ADD COLUMN net_out INTEGER;
      ALTER TABLE stat_hour ADD COLUMN net_in_pkts INTEGER;
      ALTER TABLE stat_hour ADD COLUMN net_out_pkts INTEGER;
      ALTER TABLE stat_minute ADD COLUMN io_n INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE stat_hour ADD COLUMN io_n INTEGER NOT NULL DEFAULT 0;
    `,
  },
];
