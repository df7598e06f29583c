/** Numbered, append-only: never edit a shipped migration, add the next one. */
export const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        node TEXT NOT NULL,
        vm TEXT,
        user TEXT,
        state TEXT NOT NULL CHECK (state IN ('running', 'ok', 'failed')),
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER,
        message TEXT,
        detail TEXT,
        params TEXT NOT NULL DEFAULT '{}',
        progress TEXT,
        result TEXT
      );
      -- The busy lock: at most one running job per VM, enforced by SQLite itself.
      CREATE UNIQUE INDEX jobs_one_running_per_vm ON jobs (node, vm) WHERE state = 'running' AND vm IS NOT NULL;
      CREATE INDEX jobs_started ON jobs (started_at_ms);
    `,
  },
  {
    version: 2,
    sql: `
      -- A node in maintenance (or on its way in or out): one row per node, the plan and its moves as JSON.
      CREATE TABLE maintenance (
        node TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('evacuating', 'maintenance', 'returning', 'normal')),
        since_ms INTEGER NOT NULL,
        plan TEXT,
        moves TEXT NOT NULL DEFAULT '[]',
        job_id INTEGER,
        summary TEXT
      );
      -- Where each VM moved by an evacuation lives, and the node it came from.
      CREATE TABLE vm_homes (
        uuid TEXT PRIMARY KEY,
        vm TEXT NOT NULL,
        home TEXT NOT NULL,
        away_on TEXT NOT NULL,
        moved_at_ms INTEGER NOT NULL
      );
    `,
  },
  {
    version: 3,
    sql: `
      -- Invites this node made (kvm-ferry node invite): only a hash of the secret, its expiry and when it was used.
      CREATE TABLE invites (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms INTEGER,
        used_by TEXT
      );
    `,
  },
];
