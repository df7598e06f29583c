import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { reconcileOrphanJobs } from '../../src/services/orphan-jobs.js';
import type { JobKind } from '../../src/domain/job.js';

let app: TestApp | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

describe('reconcileOrphanJobs (after a crash)', () => {
  it('settles each interrupted job by what libvirt shows, and removes only a half-made disk of a failed create', async () => {
    const f = makeFixture([
      { name: 'kfdp-made', disks: [{ path: '/x/kfdp-made.qcow2' }] },
      { name: 'kfdp-on' },
      { name: 'kfdp-off', state: 'shut-off' },
      { name: 'kfdp-user', state: 'shut-off', disks: [] },
    ]);
    const half = join(f.imageDir, 'kfdp-half.qcow2');
    const outside = join(f.dir, 'kfdp-outside.qcow2');
    for (const p of [half, outside]) writeFileSync(p, 'qcow2?');
    app = await startTestApp(f);
    const repo = app.deps.jobsRepo;
    const start = (kind: JobKind, vm: string, params: Record<string, unknown> = {}) => repo.start({ kind, node: 'alpha', vm, user: 'admin', params, message: 'running' }).id;
    const ids = {
      createDone: start('create', 'kfdp-made', { newDiskPath: join(f.imageDir, 'kfdp-made.qcow2') }),
      createHalf: start('create', 'kfdp-half', { newDiskPath: half }),
      createOutside: start('create', 'kfdp-evil', { newDiskPath: outside }),
      startOk: start('start', 'kfdp-on'),
      startFailed: start('start', 'kfdp-off'),
      deleteDone: start('delete', 'kfdp-gone'),
      migrate: start('migrate', 'kfdp-user', { to: 'beta' }),
      migrateGone: start('migrate', 'kfdp-moved', { to: 'gamma' }),
    };
    const settled = await reconcileOrphanJobs(app.deps.node.ctx);
    expect(settled).toHaveLength(8);
    const job = (id: number) => repo.get(id)!;
    expect(job(ids.createDone)).toMatchObject({ state: 'ok', message: expect.stringMatching(/VM kfdp-made exists: it was created \(checked with libvirt after kvm-ferry restarted/) });
    expect(job(ids.createHalf)).toMatchObject({ state: 'failed', message: expect.stringContaining(`its half-made disk ${half} was removed`), result: { removedDisk: half } });
    expect(existsSync(half)).toBe(false);
    expect(job(ids.createOutside).state).toBe('failed');
    expect(existsSync(outside)).toBe(true);
    expect(job(ids.startOk).state).toBe('ok');
    expect(job(ids.startFailed)).toMatchObject({ state: 'failed', message: expect.stringMatching(/did not start/) });
    expect(job(ids.deleteDone).state).toBe('ok');
    // Migrations are MigrationReconciler's (it adopts them first, from both nodes' state);
    // one that reaches this generic path is only marked interrupted, and nothing is touched.
    expect(job(ids.migrate)).toMatchObject({ state: 'failed', message: expect.stringMatching(/^Interrupted: kvm-ferry restarted while this job ran \(migrate\)/) });
    expect(job(ids.migrateGone)).toMatchObject({ state: 'failed', message: expect.stringMatching(/^Interrupted: kvm-ferry restarted/) });
    expect(repo.running()).toEqual([]);
  });

  it('marks every interrupted job failed when libvirt does not answer, touching no file', async () => {
    const f = makeFixture();
    const half = join(f.imageDir, 'kfdp-half.qcow2');
    writeFileSync(half, '');
    app = await startTestApp({ ...f, uri: 'test:///nonexistent/kfdp.xml' });
    const id = app.deps.jobsRepo.start({ kind: 'create', node: 'alpha', vm: 'kfdp-half', user: null, params: { newDiskPath: half }, message: 'x' }).id;
    await reconcileOrphanJobs(app.deps.node.ctx);
    expect(app.deps.jobsRepo.get(id)).toMatchObject({ state: 'failed', message: expect.stringMatching(/restarted/) });
    expect(existsSync(half)).toBe(true);
  });
});
