import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/adapters/db/database.js';
import { JobsRepository } from '../../src/adapters/db/jobs-repository.js';
import { JobRunner } from '../../src/services/job-runner.js';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { readTrail } from '../../src/domain/job-trail.js';

/** The runner keeps each job's step log and samples: live in progress.trail, final in result.trail. */
describe('JobRunner trail', () => {
  const setup = () => {
    const repo = new JobsRepository(openDatabase(':memory:'));
    return { repo, runner: new JobRunner(repo, silentLogger) };
  };

  it('starts with the step reported before it took over, and closes every step at the end', async () => {
    const { repo, runner } = setup();
    const job = repo.start({ kind: 'migrate', node: 'a', vm: 'v', user: null, params: {}, message: 'checking' });
    repo.setProgress(job.id, { step: 'preflight', percent: 0 });
    runner.runReserved(repo.get(job.id)!, async (jc) => {
      jc.progress({ step: 'copy', percent: 40, throughputBps: 100, remainingBytes: 60 });
      const live = readTrail(repo.get(job.id)!.progress!.trail)!;
      expect(live.steps.map((s) => [s.step, s.endMs === null])).toEqual([['preflight', false], ['copy', true]]);
      expect(live.samples).toHaveLength(1);
      jc.progress({ step: 'verify', percent: 100 });
      jc.progress({ step: 'done', percent: 100 });
      return { message: 'moved', result: { to: 'b' } };
    });
    const done = (await runner.waitFor(job.id, 5000))!;
    expect(done.state).toBe('ok');
    const t = readTrail(done.result!.trail)!;
    expect(t.steps.map((s) => s.step)).toEqual(['preflight', 'copy', 'verify']);
    expect(t.steps.every((s) => s.endMs !== null && s.endMs >= s.startMs)).toBe(true);
    expect(done.result!.to).toBe('b');
  });

  it('a failed job keeps its trail, the step it failed in closed at the end', async () => {
    const { repo, runner } = setup();
    const job = runner.submit({ kind: 'migrate', node: 'a', vm: 'v', user: null, params: {}, message: 'go' }, async (jc) => {
      jc.progress({ step: 'disks', percent: 0 });
      throw new AppError('LIBVIRT_FAILED', 'copy failed');
    });
    const done = (await runner.waitFor(job.id, 5000))!;
    expect(done.state).toBe('failed');
    const t = readTrail(done.result!.trail)!;
    expect(t.steps).toHaveLength(1);
    expect(t.steps[0]).toMatchObject({ step: 'disks' });
    expect(t.steps[0]!.endMs).not.toBeNull();
  });

  it('a job that reports no steps records no trail', async () => {
    const { runner } = setup();
    const job = runner.submit({ kind: 'start', node: 'a', vm: 'v', user: null, params: {}, message: 'go' }, async () => ({ message: 'started' }));
    const done = (await runner.waitFor(job.id, 5000))!;
    expect(done.result).toBeNull();
  });
});
