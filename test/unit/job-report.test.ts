import { describe, expect, it } from 'vitest';
import { addSample, closeTrail, emptyTrail, enterStep, readTrail, sampleFrom, timeline, trailAfter, MAX_TRAIL_SAMPLES } from '../../src/domain/job-trail.js';
import { jobChecks, jobPercent, jobTrail, migrationResultWords } from '../../src/domain/job-report.js';
import type { Job } from '../../src/domain/job.js';

const job = (over: Partial<Job>): Job => ({
  id: 1, kind: 'migrate', node: 'alpha', vm: 'web1', user: null, state: 'running', startedAt: '2026-01-01T00:00:00.000Z', endedAt: null,
  durationMs: null, message: null, detail: null, params: {}, progress: null, result: null, ...over,
});

describe('job trail', () => {
  it('closes a step when the next begins and keeps repeats of the open step as one', () => {
    let t = enterStep(emptyTrail(), 'preflight', 1000);
    t = enterStep(t, 'disks', 3000);
    t = enterStep(t, 'disks', 3500);
    t = enterStep(t, 'copy', 4000);
    expect(t.steps).toEqual([
      { step: 'preflight', startMs: 1000, endMs: 3000 },
      { step: 'disks', startMs: 3000, endMs: 4000 },
      { step: 'copy', startMs: 4000, endMs: null },
    ]);
  });

  it('"done" closes the last step and opens none; closeTrail closes an open one', () => {
    const t = enterStep(enterStep(emptyTrail(), 'verify', 10), 'done', 25);
    expect(t.steps).toEqual([{ step: 'verify', startMs: 10, endMs: 25 }]);
    expect(closeTrail(enterStep(emptyTrail(), 'copy', 5), 9).steps[0]!.endMs).toBe(9);
  });

  it('keeps at most MAX_TRAIL_SAMPLES samples covering the whole job, newest kept', () => {
    let t = emptyTrail();
    for (let i = 0; i < 1000; i++) t = addSample(t, { tSec: i, bps: i, remainingBytes: 1000 - i });
    expect(t.samples.length).toBeLessThanOrEqual(MAX_TRAIL_SAMPLES);
    expect(t.samples.length).toBeGreaterThan(MAX_TRAIL_SAMPLES / 2 - 1);
    expect(t.samples[t.samples.length - 1]!.tSec).toBe(999);
    expect(t.samples[0]!.tSec).toBe(0);
  });

  it('takes samples only from progress with data figures', () => {
    expect(sampleFrom({ step: 'verify', percent: 100 }, 3)).toBeNull();
    expect(sampleFrom({ throughputBps: 10, remainingBytes: 5 }, 1.26)).toEqual({ tSec: 1.3, bps: 10, remainingBytes: 5 });
    expect(sampleFrom({ speedBps: 7, dataRemainingBytes: 3 }, 2)).toEqual({ tSec: 2, bps: 7, remainingBytes: 3 });
    const t = trailAfter(emptyTrail(), { step: 'copy', speedBps: 7 }, 3000, 1000);
    expect(t.samples).toEqual([{ tSec: 2, bps: 7, remainingBytes: null }]);
  });

  it('reads only well-formed trails and labels the timeline', () => {
    expect(readTrail(null)).toBeNull();
    expect(readTrail({ steps: 'x', samples: [] })).toBeNull();
    expect(readTrail({ steps: [{ step: 'copy', startMs: 'x' }], samples: [] })).toEqual({ steps: [], samples: [] });
    const rows = timeline({ steps: [{ step: 'preflight', startMs: 0, endMs: 1500 }, { step: 'copy', startMs: 1500, endMs: null }], samples: [] });
    expect(rows).toEqual([
      { step: 'preflight', label: 'Pre-flight', startMs: 0, endMs: 1500, durationMs: 1500 },
      { step: 'copy', label: 'Copy', startMs: 1500, endMs: null, durationMs: null },
    ]);
  });
});

describe('job report', () => {
  it('has one percent: 100 when ok, the last report clamped while running', () => {
    expect(jobPercent(job({ state: 'ok', progress: { percent: 99.9 } }))).toBe(100);
    expect(jobPercent(job({ progress: { percent: 11.3 } }))).toBe(11.3);
    expect(jobPercent(job({ progress: { percent: 140 } }))).toBe(100);
    expect(jobPercent(job({ progress: null }))).toBe(0);
    expect(jobPercent(job({ state: 'failed', progress: { percent: 'x' } }))).toBe(0);
  });

  it('prefers the final trail in the result over the live one', () => {
    const live = { steps: [{ step: 'copy', startMs: 1, endMs: null }], samples: [] };
    const final = { steps: [{ step: 'copy', startMs: 1, endMs: 2 }], samples: [] };
    expect(jobTrail(job({ progress: { trail: live } }))).toEqual(live);
    expect(jobTrail(job({ progress: { trail: live }, result: { trail: final } }))).toEqual(final);
  });

  it('lists the recorded checks, ignoring malformed ones', () => {
    expect(jobChecks(job({ params: { checks: [{ id: 'a', ok: true, message: 'fine' }, { id: 'b' }] } }))).toEqual([{ id: 'a', ok: true, message: 'fine' }]);
    expect(jobChecks(job({ params: {} }))).toEqual([]);
  });

  it('says the outcome of a migration in words, only from recorded figures', () => {
    const words = migrationResultWords(job({
      state: 'ok', params: { to: 'beta' },
      result: { from: 'alpha', to: 'beta', mode: 'live', durationMs: 12_300, downtimeMs: 41, bytesMoved: 1536 * 1024 ** 2, sourceRemoved: ['/a', '/b'], convergence: { policy: 'fast-finish', bandwidthMiBps: 100, iterations: 1, maxThrottlePercent: 0, postcopy: true } },
    }));
    expect(words).toEqual([
      'web1 now runs on node beta.',
      'Policy: Fast finish, capped at 100 MiB/s.',
      '1 memory pass; finished in post-copy.',
      'The VM was paused for 41 ms at the switch-over.',
      '1.5 GiB sent in 12.3 s.',
      '2 moved files removed from alpha.',
    ]);
    expect(migrationResultWords(job({ state: 'failed', params: { to: 'beta' } }))).toEqual(['web1 stays on node alpha; the move did not complete.']);
    expect(migrationResultWords(job({ state: 'running' }))).toEqual([]);
    expect(migrationResultWords(job({ kind: 'start', state: 'ok' }))).toEqual([]);
  });
});
