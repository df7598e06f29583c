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
];
