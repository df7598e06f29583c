import { badInput } from '../../errors.js';
import { requireChoice } from '../../domain/numbers.js';
import { CONVERGENCE_POLICIES, budgetSeconds, describePausedMove, describePrediction, predictMigration, type ConvergencePolicy, type PolicySettings, type Prediction } from '../../domain/convergence/index.js';
import { decideXbzrle, type XbzrleDecision } from '../../domain/convergence/delta-compression.js';
import { decideMemoryCopy, pausedForecast, type MemoryCopyDecision } from '../../domain/convergence/memory-copy.js';
import { emulatorVersionText } from '../../adapters/host/qemu-version.js';
import type { ConvergenceConfig } from '../../config-convergence.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';
import type { MigrationDisk, PreflightCheck } from './preflight.js';
import { localPostcopyProblem, measureForMigration, peerPostcopyProblem, type Measurements } from './measure.js';

/** What the request asked for, validated: the policy and the bandwidth cap. */
export interface ConvergenceChoice {
  policy: ConvergencePolicy;
  /** MiB/s; 0 = no cap. */
  bandwidthMiBps: number;
  /** Delta compression (XBZRLE) asked on or off for this move, null = as the config says (the policy and the VM still decide; delta-compression.ts). */
  xbzrle: boolean | null;
}

export const MAX_BANDWIDTH_MIBPS = 100_000;

/** Bad values are refused with a sentence before anything is locked or started. */
export function parseConvergenceChoice(body: Record<string, unknown>, cfg: ConvergenceConfig): ConvergenceChoice {
  const policy = body.policy === undefined || body.policy === '' ? cfg.defaultPolicy : requireChoice('policy', body.policy, CONVERGENCE_POLICIES);
  const raw = body.bandwidthMiBps ?? body.bandwidth;
  let bandwidthMiBps = cfg.bandwidthMiBps;
  if (raw !== undefined && raw !== null && raw !== '') {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{1,9}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > MAX_BANDWIDTH_MIBPS) throw badInput('bandwidthMiBps', `The bandwidth cap must be a whole number of MiB/s from 0 (no cap) to ${MAX_BANDWIDTH_MIBPS}.`);
    bandwidthMiBps = n;
  }
  const x = body.xbzrle;
  let xbzrle: boolean | null = null;
  if (x !== undefined && x !== null && x !== '') {
    if (x === true || x === 'on' || x === 'true') xbzrle = true;
    else if (x === false || x === 'off' || x === 'false') xbzrle = false;
    else throw badInput('xbzrle', 'Delta compression (xbzrle) must be on or off.');
  }
  return { policy, bandwidthMiBps, xbzrle };
}

export interface PredictionReport extends Prediction {
  memoryCopy: 'live' | 'paused';
  sentence: string;
  measuredMs: number;
  ramBytes: number;
  diskBytes: number;
  touchedRamBytes: number | null;
  budgetSec: number;
}

export interface ConvergencePlan {
  choice: ConvergenceChoice;
  settings: PolicySettings;
  /** RAM + copied disk, the budget's base and the page's "of … total". */
  budgetSec: number;
  ramBytes: number;
  diskBytes: number;
  checks: PreflightCheck[];
  prediction: PredictionReport | null;
  /** Why there is no prediction (a measurement failed, or measuring is off). */
  predictionProblems: string[];
  /** Live (pre-copy under the policy) or paused for the whole copy (an emulated guest on an affected QEMU). */
  memoryCopy: MemoryCopyDecision;
  /** XBZRLE delta compression of re-sent pages, and its cache. */
  xbzrle: XbzrleDecision;
}

/** The VM as the convergence pre-flight needs it. */
export interface ConvergenceVm {
  name: string;
  uuid: string;
  memoryMiB: number;
  /** libvirt's domain type ("kvm", "qemu" = emulated). */
  domainType: string;
  emulator: string | null;
}

export function policySettings(cfg: ConvergenceConfig, policy: ConvergencePolicy, budgetSec: number): PolicySettings {
  return { policy, maxDowntimeMs: cfg.maxDowntimeMs, budgetSec, stallIterations: cfg.stallIterations, throttleInitialPercent: cfg.throttleInitialPercent, throttleIncrementPercent: cfg.throttleIncrementPercent };
}

/**
 * The convergence part of a live migration's pre-flight: post-copy's requirement for
 * fast-finish (a check that can refuse), then the measurements and the prediction (never a
 * refusal: a VM that cannot be measured can still be moved).
 */
export async function convergencePreflight(ctx: NodeContext, vm: ConvergenceVm, peer: PeerNode, disks: MigrationDisk[], choice: ConvergenceChoice, measureNow: boolean): Promise<ConvergencePlan> {
  const cfg = ctx.config.convergence;
  const ramBytes = vm.memoryMiB * 1024 * 1024;
  const diskBytes = disks.filter((d) => d.decision === 'copy').reduce((a, d) => a + d.allocatedBytes, 0);
  const budgetSec = budgetSeconds(ramBytes, diskBytes, cfg.budgetSecPerGiB, cfg.budgetMinSec);
  const settings = policySettings(cfg, choice.policy, budgetSec);
  const checks: PreflightCheck[] = [];
  const emulated = vm.domainType === 'qemu';
  const memoryCopy = decideMemoryCopy({ vm: vm.name, domainType: vm.domainType, qemuVersionText: emulated ? await emulatorVersionText(ctx.run, vm.emulator) : null, setting: cfg.emulatedMemoryCopy });
  if (memoryCopy.reason) checks.push({ id: 'memory-copy', ok: true, message: memoryCopy.reason });
  const paused = memoryCopy.mode === 'paused';
  if (choice.policy === 'fast-finish' && paused) {
    checks.push({ id: 'postcopy', ok: true, message: 'Fast finish does not switch to post-copy here: the VM is paused for the whole copy.' });
  } else if (choice.policy === 'fast-finish') {
    const problems = (await Promise.all([localPostcopyProblem(ctx.config.nodeName), peerPostcopyProblem(peer)])).filter((p): p is string => p !== null);
    checks.push({
      id: 'postcopy',
      ok: problems.length === 0,
      message: problems.length
        ? `Fast finish cannot switch to post-copy: ${problems.join(' ')}`
        : `Both nodes support post-copy. Risk: if the link to ${peer.name} breaks during post-copy, the VM is lost on both sides.`,
    });
  }
  const xbzrle = decideXbzrle({ policy: choice.policy, paused, multifd: choice.policy !== 'fast-finish' && cfg.multifdConnections >= 2, ramBytes, setting: cfg.xbzrleCacheMiB, requested: choice.xbzrle });
  checks.push({ id: 'xbzrle', ok: true, message: xbzrle.reason });
  const base = { choice, settings, budgetSec, ramBytes, diskBytes, checks, memoryCopy, xbzrle };
  if (!measureNow || !cfg.measure) return { ...base, prediction: null, predictionProblems: cfg.measure ? [] : ['Measuring is turned off (convergence.measure).'] };
  const m: Measurements = await measureForMigration(ctx, vm, peer);
  if (m.dirtyBps === null || m.linkBps === null) return { ...base, prediction: null, predictionProblems: m.problems };
  const capBps = choice.bandwidthMiBps > 0 ? choice.bandwidthMiBps * 1024 * 1024 : null;
  let p = predictMigration({ ramBytes, touchedRamBytes: m.touchedRamBytes, diskBytes, dirtyBps: m.dirtyBps, linkBps: m.linkBps, capBps, settings });
  let sentence = describePrediction(p, vm.name, peer.name);
  if (paused) {
    // One pass while nothing changes: the policy has nothing to steer, the whole move is the pause.
    const f = pausedForecast({ ramBytes, touchedRamBytes: m.touchedRamBytes, diskBytes, bps: p.effectiveBps, budgetSec });
    p = { ...p, chosen: { policy: choice.policy, converges: f.converges, totalSec: f.converges ? f.totalSec : null, downtimeMs: f.converges ? Math.round(f.pauseSec * 1000) : null, passes: 1, throttlePercent: 0, postcopy: false, failure: f.converges ? null : 'budget' } };
    sentence = describePausedMove(p, f.totalSec, vm.name, peer.name, budgetSec);
  }
  return {
    ...base, predictionProblems: [],
    prediction: { ...p, memoryCopy: memoryCopy.mode, sentence, measuredMs: m.durationMs, ramBytes, diskBytes, touchedRamBytes: m.touchedRamBytes, budgetSec },
  };
}
