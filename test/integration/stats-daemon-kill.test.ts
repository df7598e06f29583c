import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFixture } from '../helpers/fixture.js';
import { waitFor } from '../helpers/lab-prereqs.js';

/**
 * The real daemon process (`stats-daemon/main.ts`, node-cron every second) on a test-driver
 * node with 40 running VMs, killed with SIGKILL while it writes, then started again.
 */
const VMS = 40;
const children: ChildProcess[] = [];

function startDaemon(configPath: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'stats-daemon/main.ts'], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, KVM_FERRY_CONFIG: configPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await exited(c);
    }
  }
});

describe('stats daemon process', () => {
  it('survives kill -9 mid-write: integrity_check ok, no half tick, sampling resumes after restart', async () => {
    const f = makeFixture(Array.from({ length: VMS }, (_, i) => ({ name: `kfst-k${i}` })));
    const configPath = join(f.dir, 'config.yaml');
    writeFileSync(configPath, `nodeName: alpha\nlibvirtUri: "${f.uri}"\ndataDir: ${f.dataDir}\nstats:\n  intervalSec: 1\n`);
    const dbPath = join(f.dataDir, 'stats.sqlite');
    const rows = () => {
      try {
        const db = new Database(dbPath, { readonly: true, fileMustExist: true });
        try {
          return db.prepare('SELECT count(*) FROM Data').pluck().get() as number;
        } finally {
          db.close();
        }
      } catch {
        return 0;
      }
    };

    const first = startDaemon(configPath);
    await waitFor('the daemon to write 3 ticks', 30_000, () => rows() >= 3 * VMS);
    // Kill while a tick's transaction is most likely open: poll for growth, then kill at once.
    const before = rows();
    await waitFor('a new tick to start landing', 10_000, () => rows() > before);
    first.kill('SIGKILL');
    await exited(first);
    expect(first.signalCode).toBe('SIGKILL');

    const db = new Database(dbPath);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // Each tick is one transaction: every DateTime has all VMs or none.
    const partial = db.prepare('SELECT DateTime, count(*) AS n FROM Data GROUP BY DateTime HAVING n % ? != 0').all(VMS);
    expect(partial).toEqual([]);
    const afterKill = db.prepare('SELECT count(*) FROM Data').pluck().get() as number;
    const lastTs = db.prepare('SELECT max(DateTime) FROM Data').pluck().get() as number;
    db.close();

    const second = startDaemon(configPath);
    await waitFor('sampling to resume after the restart', 30_000, () => rows() >= afterKill + 2 * VMS);
    second.kill('SIGTERM');
    await exited(second);
    const db2 = new Database(dbPath, { readonly: true });
    expect(db2.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db2.prepare('SELECT max(DateTime) FROM Data').pluck().get()).toBeGreaterThan(lastTs);
    expect(db2.prepare('SELECT count(DISTINCT VMname) FROM Data').pluck().get()).toBe(VMS);
    db2.close();
  });
});
