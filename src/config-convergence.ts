import type { ConvergencePolicy } from './domain/convergence/types.js';
import { CONVERGENCE_POLICIES } from './domain/convergence/types.js';
import { EMULATED_MEMORY_COPY, type EmulatedMemoryCopy } from './domain/convergence/memory-copy.js';
import type { XbzrleSetting } from './domain/convergence/delta-compression.js';

/**
 * How a live migration is helped to finish (`convergence:` in the config). Defaults follow
 * the peers' published numbers: oVirt's downtime steps end at 500 ms, KubeVirt budgets
 * 150 s per GiB; multifd is off because it gained nothing on the lab (bench/convergence).
 */
export interface ConvergenceConfig {
  /** Used when a request names no policy. */
  defaultPolicy: ConvergencePolicy;
  /** The longest pause the downtime steps may reach (100 ms, 150, 200, 300, 400, 500, … up to this). */
  maxDowntimeMs: number;
  /** A migration still copying after this many seconds per GiB of RAM + copied disk is aborted. */
  budgetSecPerGiB: number;
  /** Never a shorter budget than this, so a small VM on a slow link gets a fair chance. */
  budgetMinSec: number;
  /** fast-finish switches to post-copy after this many memory passes without progress. */
  stallIterations: number;
  /** Auto-converge: first CPU throttle, then the step per pass (percent). */
  throttleInitialPercent: number;
  throttleIncrementPercent: number;
  /** Default bandwidth cap in MiB/s; 0 = no cap. */
  bandwidthMiBps: number;
  /** Multifd connections for pre-copy (0 = off); never with post-copy. */
  multifdConnections: number;
  /** Pre-flight measurements (dirty rate, link) on or off; off gives no prediction. */
  measure: boolean;
  /**
   * Emulated (TCG) VMs: auto = paused for the whole copy on QEMU before 9.0, which loses
   * their memory writes during a live copy (src/domain/convergence/memory-copy.ts); paused;
   * live (only for a QEMU that carries the fix).
   */
  emulatedMemoryCopy: EmulatedMemoryCopy;
  /**
   * XBZRLE delta compression for safe and fast-finish (src/domain/convergence/delta-compression.ts):
   * 'auto' = a cache of half the VM's RAM (64 MiB … 1 GiB), 0 = off, or the cache in MiB.
   */
  xbzrleCacheMiB: XbzrleSetting;
}

export const CONVERGENCE_KEYS = ['defaultPolicy', 'maxDowntimeMs', 'budgetSecPerGiB', 'budgetMinSec', 'stallIterations', 'throttleInitialPercent', 'throttleIncrementPercent', 'bandwidthMiBps', 'multifdConnections', 'measure', 'emulatedMemoryCopy', 'xbzrleCacheMiB'] as const;

export function defaultConvergenceConfig(): ConvergenceConfig {
  return {
    defaultPolicy: 'safe',
    maxDowntimeMs: 500,
    budgetSecPerGiB: 150,
    budgetMinSec: 60,
    stallIterations: 3,
    throttleInitialPercent: 20,
    throttleIncrementPercent: 10,
    bandwidthMiBps: 0,
    multifdConnections: 0,
    measure: true,
    emulatedMemoryCopy: 'auto',
    xbzrleCacheMiB: 'auto',
  };
}

/** Parses the `convergence:` section; `fail(key, message)` throws the config error naming the key. */
export function parseConvergenceConfig(raw: unknown, fail: (key: string, message: string) => never): ConvergenceConfig {
  const d = defaultConvergenceConfig();
  if (raw === undefined || raw === null) return d;
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('convergence', `must be a mapping (${CONVERGENCE_KEYS.join(', ')})`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(CONVERGENCE_KEYS as readonly string[]).includes(k)) fail(`convergence.${k}`, `unknown key (known keys: ${CONVERGENCE_KEYS.join(', ')})`);
  const int = (k: keyof ConvergenceConfig, min: number, max: number): number => {
    const v = o[k];
    if (v === undefined || v === null) return d[k] as number;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`convergence.${k}`, `must be a whole number from ${min} to ${max}`);
    return v as number;
  };
  const policy = o.defaultPolicy ?? d.defaultPolicy;
  if (typeof policy !== 'string' || !(CONVERGENCE_POLICIES as readonly string[]).includes(policy)) fail('convergence.defaultPolicy', `must be one of ${CONVERGENCE_POLICIES.join(', ')}`);
  const measure = o.measure ?? d.measure;
  if (typeof measure !== 'boolean') fail('convergence.measure', 'must be true or false');
  const emulated = o.emulatedMemoryCopy ?? d.emulatedMemoryCopy;
  if (typeof emulated !== 'string' || !(EMULATED_MEMORY_COPY as readonly string[]).includes(emulated)) fail('convergence.emulatedMemoryCopy', `must be one of ${EMULATED_MEMORY_COPY.join(', ')}`);
  const xbzrle = o.xbzrleCacheMiB ?? d.xbzrleCacheMiB;
  if (xbzrle !== 'auto' && !(typeof xbzrle === 'number' && Number.isInteger(xbzrle) && (xbzrle === 0 || (xbzrle >= 4 && xbzrle <= 65_536))))
    fail('convergence.xbzrleCacheMiB', 'must be auto, 0 (off) or a cache size in MiB from 4 to 65536');
  const c: ConvergenceConfig = {
    defaultPolicy: policy as ConvergencePolicy,
    maxDowntimeMs: int('maxDowntimeMs', 100, 10_000),
    budgetSecPerGiB: int('budgetSecPerGiB', 1, 86_400),
    budgetMinSec: int('budgetMinSec', 1, 86_400),
    stallIterations: int('stallIterations', 1, 100),
    throttleInitialPercent: int('throttleInitialPercent', 1, 99),
    throttleIncrementPercent: int('throttleIncrementPercent', 1, 99),
    bandwidthMiBps: int('bandwidthMiBps', 0, 1_000_000),
    multifdConnections: int('multifdConnections', 0, 32),
    measure: measure as boolean,
    emulatedMemoryCopy: emulated as EmulatedMemoryCopy,
    xbzrleCacheMiB: xbzrle as XbzrleSetting,
  };
  if (c.multifdConnections === 1) fail('convergence.multifdConnections', 'must be 0 (off) or 2 or more connections');
  return c;
}
