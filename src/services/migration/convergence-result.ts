import type { ConvergencePlan } from './convergence-preflight.js';
import type { LiveCopyResult } from './live-copy.js';
import type { MigrationProgress } from '../../domain/migration-progress.js';

/**
 * What a live copy's policy did, beside what was predicted (`result.convergence` of the job):
 * recorded when the move finished, and when it failed (budget, stall, abort), so the model
 * can be judged on the moves it got wrong too.
 */
export function convergenceResult(plan: ConvergencePlan, live: LiveCopyResult, completedDowntimeMs: number | null, bytesSent: number, durationMs: number, stats: MigrationProgress | null = live.last): Record<string, unknown> {
  return {
    policy: plan.choice.policy,
    bandwidthMiBps: plan.choice.bandwidthMiBps,
    iterations: live.iterations,
    maxThrottlePercent: live.maxThrottlePercent,
    downtimeLimitMs: live.downtimeLimitMs,
    downtimeMs: live.guestPausedMs ?? completedDowntimeMs,
    memoryCopy: live.memoryCopy,
    guestPausedMs: live.guestPausedMs,
    postcopy: live.postcopy,
    // What delta compression did: pages re-sent as deltas and their bytes (4 KiB each otherwise).
    xbzrle: plan.xbzrle.cacheBytes === null ? null : { cacheMiB: plan.xbzrle.cacheBytes / 1024 / 1024, ...(stats?.xbzrle ?? {}) },
    policyActions: live.actions,
    bytesSent,
    ramPlusDiskBytes: plan.ramBytes + plan.diskBytes,
    averageBps: live.averageBps,
    predicted: plan.prediction
      ? { totalSec: plan.prediction.chosen.totalSec, downtimeMs: plan.prediction.chosen.downtimeMs, converges: plan.prediction.chosen.converges, postcopy: plan.prediction.chosen.postcopy, plainConverges: plan.prediction.plain.converges }
      : null,
    actualSec: Math.round(durationMs / 100) / 10,
  };
}
