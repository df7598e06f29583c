import { QEMU_DEFAULT_DOWNTIME_MS, downtimeSteps, initialDowntimeMs, type ConvergencePolicy, type PolicySettings } from './types.js';

export interface PredictionInput {
  /** The guest's RAM. */
  ramBytes: number;
  /** RAM QEMU will really send in its first pass (never-touched pages are zero and cost nothing): the process RSS, else all RAM. */
  touchedRamBytes: number | null;
  /** Disk data the mirror copies (allocated bytes of the copied disks). */
  diskBytes: number;
  /** Measured guest dirty rate, bytes/s. */
  dirtyBps: number;
  /** Measured usable throughput to the destination's data address, bytes/s. */
  linkBps: number;
  /** Bandwidth cap of this migration, bytes/s; null = none. */
  capBps: number | null;
  settings: PolicySettings;
}

export interface PolicyForecast {
  converges: boolean;
  /** Whole migration, seconds; null when it would not finish. */
  totalSec: number | null;
  downtimeMs: number | null;
  passes: number;
  /** Highest vCPU throttle the forecast needed (percent). */
  throttlePercent: number;
  postcopy: boolean;
  /** Why it would not finish (budget, or never). */
  failure: 'budget' | 'never' | null;
}

export interface Prediction {
  dirtyBps: number;
  linkBps: number;
  /** min(link, cap): what the migration can use. */
  effectiveBps: number;
  /** Plain pre-copy (QEMU's fixed 300 ms, no help). */
  plain: PolicyForecast;
  /** Under the chosen policy. */
  chosen: PolicyForecast & { policy: ConvergencePolicy };
}

/** Post-copy switch-over: QEMU stops the source, sends device state and starts the destination; the dirty pages follow on demand. */
const POSTCOPY_DOWNTIME_MS = 100;
/** QEMU's auto-converge throttles after this many passes in which the guest dirtied more than half of what was sent. */
const AUTO_CONVERGE_BAD_PASSES = 2;
const MAX_THROTTLE = 99;
const MAX_PASSES = 500;
/** A pass never takes less than this (QEMU's bitmap sync and bookkeeping). */
const MIN_PASS_SEC = 0.1;

type Mode = 'plain' | ConvergencePolicy;

/**
 * Simulates pre-copy pass by pass: pass i sends what pass i−1 left dirty, at the link
 * rate; the guest dirties `dirtyBps × (1 − throttle)` meanwhile, never more than its RAM.
 * It switches over when the rest fits in the allowed downtime. Policies act as the step
 * function does: downtime steps on passes without progress, QEMU-style auto-converge
 * (safe, fast-finish), post-copy after N stalled passes (fast-finish), a budget (all but plain).
 */
export function forecast(input: PredictionInput, mode: Mode): PolicyForecast {
  const s = input.settings;
  const bps = effectiveBps(input);
  const ram = input.ramBytes;
  let t = input.diskBytes / bps;
  let remaining = Math.min(ram, input.touchedRamBytes ?? ram);
  let downtime = mode === 'plain' ? QEMU_DEFAULT_DOWNTIME_MS : initialDowntimeMs({ policy: mode, maxDowntimeMs: s.maxDowntimeMs });
  const steps = downtimeSteps(s.maxDowntimeMs);
  const throttleOn = mode === 'safe' || mode === 'fast-finish';
  let throttle = 0;
  let maxThrottle = 0;
  let bad = 0;
  let best = Infinity;
  let stalled = 0;
  const budget = mode === 'plain' ? Infinity : s.budgetSec;
  const fail = (failure: 'budget' | 'never', passes: number): PolicyForecast => ({ converges: false, totalSec: null, downtimeMs: null, passes, throttlePercent: maxThrottle, postcopy: false, failure });
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    const passSec = Math.max(MIN_PASS_SEC, remaining / bps);
    t += passSec;
    if (t > budget) return fail('budget', pass);
    const dirtied = Math.min(input.touchedRamBytes ?? ram, ram, input.dirtyBps * (1 - throttle / 100) * passSec);
    if ((dirtied / bps) * 1000 <= downtime) {
      const down = Math.max(1, Math.round((dirtied / bps) * 1000));
      return { converges: true, totalSec: round1(t + down / 1000), downtimeMs: down, passes: pass, throttlePercent: maxThrottle, postcopy: false, failure: null };
    }
    if (throttleOn) {
      bad = dirtied > remaining / 2 ? bad + 1 : 0;
      if (bad >= AUTO_CONVERGE_BAD_PASSES) {
        throttle = Math.min(MAX_THROTTLE, throttle === 0 ? s.throttleInitialPercent : throttle + s.throttleIncrementPercent);
        maxThrottle = Math.max(maxThrottle, throttle);
        bad = 0;
      }
    }
    if (pass > 1 && dirtied >= best * 0.9) {
      stalled++;
      if (mode === 'safe' || mode === 'fast-finish') downtime = steps.find((ms) => ms > downtime) ?? downtime;
      if (mode === 'fast-finish' && stalled >= s.stallIterations) {
        // After the switch the rest of RAM follows once, while the VM runs on the destination.
        const total = t + POSTCOPY_DOWNTIME_MS / 1000 + dirtied / bps;
        return { converges: true, totalSec: round1(total), downtimeMs: POSTCOPY_DOWNTIME_MS, passes: pass, throttlePercent: maxThrottle, postcopy: true, failure: null };
      }
    } else {
      stalled = 0;
      best = Math.min(best, dirtied);
    }
    if (pass === 1) best = dirtied;
    remaining = dirtied;
    // Nothing will change any more: plain or strict with the guest out-dirtying the link.
    if (!throttleOn && stalled >= 20) return fail(mode === 'plain' ? 'never' : 'budget', pass);
  }
  return fail(mode === 'plain' ? 'never' : 'budget', MAX_PASSES);
}

export function predictMigration(input: PredictionInput): Prediction {
  return {
    dirtyBps: input.dirtyBps,
    linkBps: input.linkBps,
    effectiveBps: effectiveBps(input),
    plain: forecast(input, 'plain'),
    chosen: { policy: input.settings.policy, ...forecast(input, input.settings.policy) },
  };
}

function effectiveBps(input: PredictionInput): number {
  return Math.max(1, input.capBps === null ? input.linkBps : Math.min(input.linkBps, input.capBps));
}

const round1 = (n: number) => Math.round(n * 10) / 10;

const POLICY_NAMES: Record<ConvergencePolicy, string> = { safe: 'Safe', 'fast-finish': 'Fast finish', strict: 'Strict' };

function rate(bps: number): string {
  const mb = bps / 1e6;
  return mb >= 10 ? `${Math.round(mb)} MB/s` : `${mb.toFixed(1)} MB/s`;
}

function duration(sec: number): string {
  return sec < 90 ? `about ${Math.max(1, Math.round(sec))} s` : `about ${Math.round(sec / 60)} min`;
}

/** The prediction in the words the pre-flight page shows. */
export function describePrediction(p: Prediction, vm: string, dest: string): string {
  const parts = [`This VM writes ${rate(p.dirtyBps)} of memory; the link to ${dest} carries ${rate(p.linkBps)}${p.effectiveBps < p.linkBps ? ` (capped at ${rate(p.effectiveBps)} for this migration)` : ''}.`];
  const c = p.chosen;
  const name = POLICY_NAMES[c.policy];
  if (p.plain.converges) parts.push(`Plain pre-copy should finish in ${duration(p.plain.totalSec!)} with ${p.plain.downtimeMs} ms of pause.`);
  else parts.push('Without help the copy would never finish.');
  if (!c.converges) {
    parts.push(`With the ${name} policy it is expected to be stopped at its time budget, leaving ${vm} running here; choose another policy, a faster link or a quieter moment.`);
  } else if (c.policy !== 'strict' || !p.plain.converges) {
    const how = c.postcopy ? `switching to post-copy (the VM then runs on ${dest} while the rest of its memory follows)` : c.throttlePercent > 0 ? `slowing the VM (up to ${c.throttlePercent} % CPU throttle) while it does` : `with at most ${c.downtimeMs} ms of pause`;
    parts.push(`With the ${name} policy it should finish in ${duration(c.totalSec!)}, ${how}.`);
  }
  return parts.join(' ');
}

/** The prediction in words for a VM paused for the whole copy (memory-copy.ts says why). */
export function describePausedMove(p: Prediction, totalSec: number, vm: string, dest: string, budgetSec: number): string {
  const link = `The link to ${dest} carries ${rate(p.linkBps)}${p.effectiveBps < p.linkBps ? ` (capped at ${rate(p.effectiveBps)} for this migration)` : ''}.`;
  if (totalSec > budgetSec) return `${link} ${vm} is paused while it moves, and the copy would take ${duration(totalSec)}, longer than its ${budgetSec} s budget: it is expected to be stopped, leaving ${vm} running here.`;
  return `${link} ${vm} is paused while it moves: it should be back, running on ${dest}, in ${duration(totalSec)}.`;
}
