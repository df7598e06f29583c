import { downtimeSteps, initialDowntimeMs, type PolicySettings } from './types.js';

/** One look at a running migration, from `virsh domjobinfo --rawstats`. */
export interface IterationSample {
  elapsedMs: number;
  /** QEMU's memory pass counter (memory_iteration); null while the disks are still mirrored. */
  iteration: number | null;
  memoryRemainingBytes: number | null;
  /** Post-copy has begun (QEMU counts post-copy page requests, or the job says so). */
  postcopyActive: boolean;
}

export interface PolicyState {
  downtimeMs: number;
  /** Lowest "remaining" seen at a pass boundary: progress means getting below it. */
  bestRemaining: number | null;
  lastIteration: number;
  /** Passes in a row that did not bring "remaining" clearly down. */
  stalled: number;
  postcopyRequested: boolean;
  aborted: boolean;
}

export type PolicyAction =
  | { kind: 'set-downtime'; ms: number; why: string }
  | { kind: 'postcopy'; why: string }
  | { kind: 'abort'; why: string };

/** Less than 10 % lower than the best so far counts as no progress (oVirt uses "no progress" the same way). */
const PROGRESS_FACTOR = 0.9;

export function initialPolicyState(s: PolicySettings): PolicyState {
  return { downtimeMs: initialDowntimeMs(s), bestRemaining: null, lastIteration: -1, stalled: 0, postcopyRequested: false, aborted: false };
}

/**
 * The convergence policy as a step function: given the state and the newest sample, the
 * next state and what to do now. Pure, so every policy is tested with fixtures; the
 * migration loop only carries the actions out (live-copy.ts).
 *
 * - safe: each pass without progress raises the allowed downtime one step (100 → … → max);
 *   QEMU's auto-converge (given up front) throttles the guest's vCPUs meanwhile; abort at the budget.
 * - fast-finish: as safe, and after `stallIterations` such passes, switch to post-copy.
 * - strict: no steps, no throttle, no post-copy; abort at the budget.
 * Post-copy cannot be aborted (the VM already runs on the destination), so the budget stops applying.
 */
export function policyStep(s: PolicySettings, state: PolicyState, sample: IterationSample): { state: PolicyState; actions: PolicyAction[] } {
  const next: PolicyState = { ...state };
  const actions: PolicyAction[] = [];
  if (state.aborted) return { state: next, actions };
  const inPostcopy = state.postcopyRequested || sample.postcopyActive;

  if (!inPostcopy && sample.elapsedMs > s.budgetSec * 1000) {
    next.aborted = true;
    actions.push({ kind: 'abort', why: `the copy did not finish within its budget of ${s.budgetSec} s` });
    return { state: next, actions };
  }
  if (sample.iteration === null || sample.memoryRemainingBytes === null || sample.iteration <= state.lastIteration) return { state: next, actions };

  // A new memory pass began: judge the one before it by what it left to send.
  next.lastIteration = sample.iteration;
  const remaining = sample.memoryRemainingBytes;
  // QEMU's first pass sends all of RAM; progress is judged from the second pass on.
  if (state.bestRemaining === null || remaining < state.bestRemaining * PROGRESS_FACTOR) {
    next.bestRemaining = state.bestRemaining === null ? remaining : Math.min(remaining, state.bestRemaining);
    next.stalled = 0;
    return { state: next, actions };
  }
  next.stalled = state.stalled + 1;
  if (s.policy === 'strict' || inPostcopy) return { state: next, actions };

  const higher = downtimeSteps(s.maxDowntimeMs).find((ms) => ms > state.downtimeMs);
  if (higher !== undefined) {
    next.downtimeMs = higher;
    actions.push({ kind: 'set-downtime', ms: higher, why: `memory pass ${sample.iteration} made no progress` });
  }
  if (s.policy === 'fast-finish' && next.stalled >= s.stallIterations) {
    next.postcopyRequested = true;
    actions.push({ kind: 'postcopy', why: `${next.stalled} memory passes in a row made no progress` });
  }
  return { state: next, actions };
}
