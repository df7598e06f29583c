import { describe, expect, it } from 'vitest';
import { budgetSeconds, describePrediction, downtimeSteps, forecast, initialPolicyState, policyStep, predictMigration, type IterationSample, type PolicySettings, type PolicyState } from '../../src/domain/convergence/index.js';
import { parseConvergenceConfig, defaultConvergenceConfig } from '../../src/config-convergence.js';
import { parseConvergenceChoice } from '../../src/services/migration/convergence-preflight.js';
import { parseDirtyRateStats, buildDirtyRateCalcArgs, buildSetMaxDowntimeArgs, buildPostcopyArgs } from '../../src/adapters/virsh/convergence-args.js';
import { buildMigrateArgs } from '../../src/adapters/virsh/migrate-args.js';
import { autoXbzrleCacheMiB, decideXbzrle } from '../../src/domain/convergence/delta-compression.js';
import { linkRate, parseSinkOutput } from '../../src/adapters/ssh/link-test.js';
import { userfaultfdProblem } from '../../src/services/migration/measure.js';
import { parseDomJobInfoRaw, truthfulPercent, type MigrationProgress } from '../../src/domain/migration-progress.js';
import { progressView, type LiveCopyResult } from '../../src/services/migration/live-copy.js';
import type { ConvergencePlan } from '../../src/services/migration/convergence-preflight.js';
import { AppError } from '../../src/errors.js';

const MiB = 1024 ** 2;
const settings = (policy: PolicySettings['policy'], over: Partial<PolicySettings> = {}): PolicySettings => ({ policy, maxDowntimeMs: 500, budgetSec: 120, stallIterations: 3, throttleInitialPercent: 20, throttleIncrementPercent: 10, ...over });

/** Feeds samples through the step function; returns every action with its sample index. */
function run(s: PolicySettings, samples: IterationSample[]): { state: PolicyState; actions: { at: number; kind: string; ms?: number }[] } {
  let state = initialPolicyState(s);
  const actions: { at: number; kind: string; ms?: number }[] = [];
  samples.forEach((x, at) => {
    const r = policyStep(s, state, x);
    state = r.state;
    for (const a of r.actions) actions.push({ at, kind: a.kind, ...(a.kind === 'set-downtime' ? { ms: a.ms } : {}) });
  });
  return { state, actions };
}

// A busy guest: every pass leaves its 64 MiB working set dirty again (fixture from the lab's ferry_dirty=64 guest).
const stalledPasses = (n: number, from = 1): IterationSample[] => Array.from({ length: n }, (_, i) => ({ elapsedMs: (i + 1) * 5000, iteration: from + i, memoryRemainingBytes: 64 * MiB, postcopyActive: false }));

describe('convergence policy step function', () => {
  it('safe: starts at 100 ms and raises the allowed downtime one step per pass without progress, up to the maximum', () => {
    const s = settings('safe');
    expect(initialPolicyState(s).downtimeMs).toBe(100);
    const { actions, state } = run(s, stalledPasses(8));
    // The first pass sets the baseline; each later stalled pass steps once.
    expect(actions).toEqual([150, 200, 300, 400, 500].map((ms, i) => ({ at: i + 1, kind: 'set-downtime', ms })));
    expect(state.downtimeMs).toBe(500);
    expect(state.stalled).toBe(7);
  });

  it('safe: a pass that clearly lowers "remaining" resets the stall count and changes nothing', () => {
    const s = settings('safe');
    const shrinking = [200, 100, 40, 10].map((m, i) => ({ elapsedMs: i * 1000, iteration: i + 1, memoryRemainingBytes: m * MiB, postcopyActive: false }));
    expect(run(s, shrinking).actions).toEqual([]);
  });

  it('repeated samples of the same pass count once', () => {
    const s = settings('safe');
    const same = [1, 2, 2, 2, 2].map((it, i) => ({ elapsedMs: i * 1000, iteration: it, memoryRemainingBytes: 64 * MiB, postcopyActive: false }));
    expect(run(s, same).actions).toEqual([{ at: 1, kind: 'set-downtime', ms: 150 }]);
  });

  it('safe and strict abort once the budget is passed; strict never raises the downtime', () => {
    const over = [...stalledPasses(3), { elapsedMs: 121_000, iteration: 4, memoryRemainingBytes: 64 * MiB, postcopyActive: false }];
    expect(run(settings('strict'), over).actions).toEqual([{ at: 3, kind: 'abort' }]);
    expect(initialPolicyState(settings('strict')).downtimeMs).toBe(300);
    expect(run(settings('safe'), over).actions.at(-1)).toEqual({ at: 3, kind: 'abort' });
    // Nothing more after an abort.
    const after = run(settings('strict'), [...over, ...stalledPasses(2, 5)]);
    expect(after.actions).toHaveLength(1);
  });

  it('fast-finish: post-copy after N stalled passes, once; no budget abort once post-copy began', () => {
    const s = settings('fast-finish', { stallIterations: 2 });
    const r = run(s, [...stalledPasses(6), { elapsedMs: 500_000, iteration: 7, memoryRemainingBytes: 64 * MiB, postcopyActive: true }]);
    expect(r.actions.filter((a) => a.kind === 'postcopy')).toEqual([{ at: 2, kind: 'postcopy' }]);
    expect(r.actions.some((a) => a.kind === 'abort')).toBe(false);
  });

  it('downtime steps follow oVirt and end at the configured maximum', () => {
    expect(downtimeSteps(500)).toEqual([100, 150, 200, 300, 400, 500]);
    expect(downtimeSteps(250)).toEqual([100, 150, 200, 250]);
    expect(downtimeSteps(1000)).toEqual([100, 150, 200, 300, 400, 500, 1000]);
  });

  it('budget: seconds per GiB of RAM and copied disk, with a floor', () => {
    expect(budgetSeconds(1024 ** 3, 1024 ** 3, 150, 60)).toBe(300);
    expect(budgetSeconds(128 * MiB, 32 * MiB, 150, 60)).toBe(60);
  });
});

describe('prediction', () => {
  const idle = { ramBytes: 256 * MiB, touchedRamBytes: 60 * MiB, diskBytes: 20 * MiB, dirtyBps: 0.2e6, linkBps: 100e6, capBps: null, settings: settings('safe') };
  const busy = { ramBytes: 256 * MiB, touchedRamBytes: 120 * MiB, diskBytes: 20 * MiB, dirtyBps: 16e6, linkBps: 10e6, capBps: null, settings: settings('safe', { budgetSec: 600 }) };

  it('an idle guest on a fast link: plain converges in about RAM+disk ÷ link', () => {
    const p = predictMigration(idle);
    expect(p.plain.converges).toBe(true);
    expect(p.plain.totalSec!).toBeGreaterThan(0.5);
    expect(p.plain.totalSec!).toBeLessThan(2);
    expect(p.chosen.converges).toBe(true);
    expect(p.chosen.downtimeMs!).toBeLessThanOrEqual(100);
  });

  it('a guest dirtying more than the link carries: plain never finishes; safe does with throttle; strict hits the budget; fast-finish uses post-copy', () => {
    const p = predictMigration(busy);
    expect(p.plain).toMatchObject({ converges: false, failure: 'never' });
    expect(p.chosen).toMatchObject({ converges: true, postcopy: false });
    expect(p.chosen.throttlePercent).toBeGreaterThan(0);
    expect(p.chosen.downtimeMs!).toBeLessThanOrEqual(500);
    expect(forecast({ ...busy, settings: settings('strict', { budgetSec: 600 }) }, 'strict')).toMatchObject({ converges: false, failure: 'budget' });
    const ff = forecast({ ...busy, settings: settings('fast-finish', { budgetSec: 600 }) }, 'fast-finish');
    expect(ff).toMatchObject({ converges: true, postcopy: true });
    expect(ff.totalSec!).toBeLessThan(p.chosen.totalSec!);
  });

  it('a bandwidth cap below the link slows the forecast and is said', () => {
    const p = predictMigration({ ...idle, capBps: 10 * MiB });
    expect(p.effectiveBps).toBe(10 * MiB);
    expect(p.plain.totalSec!).toBeGreaterThan(predictMigration(idle).plain.totalSec! * 5);
    expect(describePrediction(p, 'web', 'lab-b')).toContain('capped at');
  });

  it('says it in words', () => {
    const text = describePrediction(predictMigration(busy), 'db', 'lab-b');
    expect(text).toMatch(/^This VM writes 16 MB\/s of memory; the link to lab-b carries 10 MB\/s\. Without help the copy would never finish\. With the Safe policy it should finish in about \d+ (s|min), slowing the VM \(up to \d+ % CPU throttle\) while it does\.$/);
  });
});

describe('convergence config and request', () => {
  const fail = (key: string, message: string): never => {
    throw new Error(`${key}: ${message}`);
  };
  it('defaults, and every bad value refused naming its key', () => {
    expect(parseConvergenceConfig(undefined, fail)).toEqual(defaultConvergenceConfig());
    expect(() => parseConvergenceConfig({ defaultPolicy: 'yolo' }, fail)).toThrow(/^convergence\.defaultPolicy: /);
    expect(() => parseConvergenceConfig({ maxDowntimeMs: 50 }, fail)).toThrow(/^convergence\.maxDowntimeMs: /);
    expect(() => parseConvergenceConfig({ budgetSecPerGiB: '150' }, fail)).toThrow(/^convergence\.budgetSecPerGiB: /);
    expect(() => parseConvergenceConfig({ multifdConnections: 1 }, fail)).toThrow(/^convergence\.multifdConnections: /);
    expect(() => parseConvergenceConfig({ measure: 'yes' }, fail)).toThrow(/^convergence\.measure: /);
    expect(() => parseConvergenceConfig({ nope: 1 }, fail)).toThrow(/^convergence\.nope: unknown key/);
    for (const bad of ['on', -1, 2, 1.5, 70_000, '64']) expect(() => parseConvergenceConfig({ xbzrleCacheMiB: bad }, fail)).toThrow(/^convergence\.xbzrleCacheMiB: must be auto, 0 \(off\) or a cache size in MiB from 4 to 65536$/);
    expect(parseConvergenceConfig({ xbzrleCacheMiB: 0 }, fail).xbzrleCacheMiB).toBe(0);
    expect(parseConvergenceConfig({ xbzrleCacheMiB: 256 }, fail).xbzrleCacheMiB).toBe(256);
    expect(defaultConvergenceConfig().xbzrleCacheMiB).toBe('auto');
  });
  it('policy and bandwidth from a request: default from config, bad values a sentence', () => {
    const cfg = defaultConvergenceConfig();
    expect(parseConvergenceChoice({}, cfg)).toEqual({ policy: 'safe', bandwidthMiBps: 0, xbzrle: null });
    expect(parseConvergenceChoice({ xbzrle: 'off' }, cfg).xbzrle).toBe(false);
    expect(parseConvergenceChoice({ xbzrle: true }, cfg).xbzrle).toBe(true);
    expect(() => parseConvergenceChoice({ xbzrle: 'maybe' }, cfg)).toThrow('Delta compression (xbzrle) must be on or off.');
    expect(parseConvergenceChoice({ policy: 'strict', bandwidthMiBps: '40' }, cfg)).toEqual({ policy: 'strict', bandwidthMiBps: 40, xbzrle: null });
    for (const bad of [{ policy: 'turbo' }, { policy: 3 }, { bandwidthMiBps: -1 }, { bandwidthMiBps: '1e3' }, { bandwidthMiBps: 1.5 }, { bandwidthMiBps: '10; rm -rf /' }, { bandwidthMiBps: 100_001 }]) {
      expect(() => parseConvergenceChoice(bad, cfg)).toThrow(AppError);
    }
    expect(() => parseConvergenceChoice({ bandwidthMiBps: 'x' }, cfg)).toThrow('The bandwidth cap must be a whole number of MiB/s from 0 (no cap) to 100000.');
  });
});

describe('virsh and sink parsing', () => {
  it('reads domstats --dirtyrate', () => {
    expect(parseDirtyRateStats("Domain: 'x'\n  dirtyrate.calc_status=2\n  dirtyrate.calc_period=1\n  dirtyrate.megabytes_per_second=16\n")).toEqual({ status: 2, megabytesPerSecond: 16 });
    expect(parseDirtyRateStats("Domain: 'x'\n  dirtyrate.calc_status=1\n")).toEqual({ status: 1, megabytesPerSecond: null });
  });
  it('argv by UUID, never a shell', () => {
    const u = '8f52e39d-8338-4a62-aa95-c973db789b3c';
    expect(buildDirtyRateCalcArgs('qemu:///system', u, 1)).toEqual(['-c', 'qemu:///system', 'domdirtyrate-calc', '--domain', u, '--seconds', '1']);
    expect(buildSetMaxDowntimeArgs('qemu:///system', u, 150)).toEqual(['-c', 'qemu:///system', 'migrate-setmaxdowntime', '--domain', u, '--downtime', '150']);
    expect(buildPostcopyArgs('qemu:///system', u)).toEqual(['-c', 'qemu:///system', 'migrate-postcopy', '--domain', u]);
    const args = buildMigrateArgs({ sourceUri: 'qemu:///system', uuid: u, destUri: 'qemu+ssh://b/system', dataAddress: '10.0.0.2', mode: 'live', copyTargets: ['vda'], bandwidthMiBps: 40, autoConverge: { initialPercent: 20, incrementPercent: 10 }, postcopy: true });
    expect(args).toEqual(expect.arrayContaining(['--auto-converge', '--auto-converge-initial', '20', '--auto-converge-increment', '10', '--postcopy', '--bandwidth', '40']));
    expect(args).not.toContain('--parallel');
    expect(args).not.toContain('--compressed');
    const x = buildMigrateArgs({ sourceUri: 'qemu:///system', uuid: u, destUri: 'qemu+ssh://b/system', dataAddress: '10.0.0.2', mode: 'live', xbzrleCacheBytes: 128 * MiB });
    expect(x.join(' ')).toContain(`--compressed --comp-methods xbzrle --comp-xbzrle-cache ${128 * MiB}`);
    // Offline moves copy no memory: nothing to compress.
    expect(buildMigrateArgs({ sourceUri: 'qemu:///system', uuid: u, destUri: 'qemu+ssh://b/system', dataAddress: '10.0.0.2', mode: 'offline', xbzrleCacheBytes: 128 * MiB })).not.toContain('--compressed');
  });
  it('XBZRLE: on for safe and fast-finish with half the RAM as cache, off where it cannot help or mix', () => {
    const base = { policy: 'safe' as const, paused: false, multifd: false, ramBytes: 256 * MiB, setting: 'auto' as const, requested: null };
    expect(decideXbzrle(base).cacheBytes).toBe(128 * MiB);
    expect(decideXbzrle(base).reason).toBe('Delta compression (XBZRLE) is on: a page the VM rewrites during the copy is re-sent as its changes, with a 128 MiB cache on this node (half the VM\u2019s memory, 64 MiB to 1 GiB).');
    expect(decideXbzrle({ ...base, policy: 'fast-finish' }).cacheBytes).toBe(128 * MiB);
    expect(autoXbzrleCacheMiB(64 * MiB)).toBe(64);
    expect(autoXbzrleCacheMiB(3000 * MiB)).toBe(1024);
    expect(autoXbzrleCacheMiB(64 * 1024 * MiB)).toBe(1024);
    expect(autoXbzrleCacheMiB(1000 * MiB)).toBe(256);
    expect(decideXbzrle({ ...base, setting: 512 }).cacheBytes).toBe(512 * MiB);
    // Asked for on a node whose config has it off: the automatic cache.
    expect(decideXbzrle({ ...base, setting: 0, requested: true }).cacheBytes).toBe(128 * MiB);
    for (const [over, why] of [
      [{ policy: 'strict' }, 'the strict policy copies memory plainly'],
      [{ paused: true }, 'the VM is paused for its copy, so no page is sent twice'],
      [{ multifd: true }, 'multifd is on (convergence.multifdConnections), and QEMU does not combine the two'],
      [{ setting: 0 }, 'convergence.xbzrleCacheMiB is 0'],
      [{ requested: false }, 'it was turned off for this migration'],
      [{ requested: false, setting: 512 }, 'it was turned off for this migration'],
    ] as const) {
      const d = decideXbzrle({ ...base, ...over });
      expect(d.cacheBytes).toBeNull();
      expect(d.reason).toBe(`Delta compression (XBZRLE) is not used: ${why}.`);
    }
  });
  it('reads XBZRLE counters from domjobinfo when QEMU reports them', () => {
    const text = 'Job type: 3\ndata_total: 100\ndata_processed: 100\ndata_remaining: 0\ncompression_cache: 134217728\ncompression_bytes: 917504\ncompression_pages: 65536\ncompression_cache_misses: 12\ncompression_overflow: 3\n';
    expect(parseDomJobInfoRaw(text)!.xbzrle).toEqual({ pages: 65536, bytes: 917504, cacheMisses: 12, overflow: 3 });
    expect(parseDomJobInfoRaw('Job type: 2\ndata_total: 100\ndata_processed: 50\n')!.xbzrle).toBeNull();
  });
  it('reads the link sink and the userfaultfd sysctl', () => {
    expect(parseSinkOutput('bytes=9437184 secs=2.500000\n')).toEqual({ bytes: 9437184, seconds: 2.5 });
    expect(parseSinkOutput('listen: Address in use')).toBeNull();
    // A timed transfer; a fast link (all 64 MiB inside the clock's resolution) as a floor; too little to tell.
    expect(linkRate({ bytes: 9437184, seconds: 2.5 })).toBe(3774873.6);
    expect(linkRate({ bytes: 64 * 2 ** 20, seconds: 0.03 })).toBe((64 * 2 ** 20) / 0.05);
    expect(linkRate({ bytes: 256 * 1024, seconds: 0.01 })).toBeNull();
    expect(linkRate({ bytes: 0, seconds: 1 })).toBeNull();
    expect(userfaultfdProblem('lab-a', '1\n')).toBeNull();
    expect(userfaultfdProblem('lab-a', '0\n')).toBe('node lab-a does not let QEMU use userfaultfd, which post-copy needs; set sysctl vm.unprivileged_userfaultfd=1 there.');
  });
  it('percent is never 100 while data remains', () => {
    expect(truthfulPercent(999_999, 1_000_000, 1)).toBe(99.9);
    expect(truthfulPercent(100, 100, 0)).toBe(100);
    // A lab sample from a re-sending pre-copy: processed is past the total, remaining is not zero.
    const p = parseDomJobInfoRaw('Job type: 2\ndata_total: 168165376\ndata_processed: 205844296\ndata_remaining: 2555904\nmemory_iteration: 4\nmemory_dirty_rate: 3906\nmemory_page_size: 4096\nauto_converge_throttle: 30\n');
    expect(p).toMatchObject({ percent: 98.4, memoryIteration: 4, dirtyRateBps: 3906 * 4096, throttlePercent: 30 });
  });
});

describe('the progress a live copy shows', () => {
  const sample = (memRemaining: number, over: Partial<MigrationProgress> = {}): MigrationProgress => ({
    percent: 0, dataTotalBytes: 160 * MiB, dataProcessedBytes: 160 * MiB - memRemaining, dataRemainingBytes: memRemaining, memoryTotalBytes: 160 * MiB,
    memoryProcessedBytes: 160 * MiB - memRemaining, diskTotalBytes: null, diskProcessedBytes: null, speedBps: 10 * MiB, etaSec: null, elapsedMs: 5000,
    downtimeMs: null, memoryIteration: 1, memoryRemainingBytes: memRemaining, dirtyRateBps: null, throttlePercent: null, postcopyRequests: null, xbzrle: null, ...over,
  });
  const plan = { choice: { policy: 'safe', bandwidthMiBps: 0 }, settings: settings('safe'), budgetSec: 60, ramBytes: 160 * MiB, diskBytes: 0, checks: [], prediction: null, predictionProblems: [], memoryCopy: { mode: 'paused', emulated: true, qemuVersion: '7.2.22', reason: null } } as unknown as ConvergencePlan;
  const result = (memoryCopy: 'live' | 'paused'): LiveCopyResult => ({ last: null, iterations: 1, maxThrottlePercent: 0, downtimeLimitMs: 100, postcopy: false, actions: [], averageBps: null, memoryCopy, guestPausedMs: null });

  it('copying memory below 100 %; with nothing left while libvirt finishes, switching over (never "copying memory" at 100 %)', () => {
    for (const mode of ['paused', 'live'] as const) {
      const copying = progressView(sample(4 * MiB), 160 * MiB, plan, 100, result(mode), settings('safe'));
      expect(copying.phase).toBe('memory');
      expect(copying.percent).toBeLessThan(100);
      const done = progressView(sample(0), 160 * MiB, plan, 100, result(mode), settings('safe'));
      expect(done).toMatchObject({ phase: 'switch-over', percent: 100, remainingBytes: 0 });
    }
    expect(progressView(sample(160 * MiB, { memoryTotalBytes: 0, memoryIteration: 0 }), 160 * MiB, plan, 100, result('live'), settings('safe')).phase).toBe('disk-copy');
  });
});
