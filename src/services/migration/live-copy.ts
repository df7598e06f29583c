import { AppError } from '../../errors.js';
import { parseDomJobInfoRaw, truthfulPercent, type MigrationProgress } from '../../domain/migration-progress.js';
import { forecast, initialPolicyState, policyStep, type PolicyAction, type PolicySettings } from '../../domain/convergence/index.js';
import { buildJobAbortArgs, buildJobInfoArgs, buildMigrateArgs } from '../../adapters/virsh/migrate-args.js';
import { buildPostcopyArgs, buildResumeArgs, buildSetMaxDowntimeArgs, buildSuspendArgs } from '../../adapters/virsh/convergence-args.js';
import { localSide, peerSide } from './vm-sides.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';
import type { ConvergencePlan } from './convergence-preflight.js';
import { convergenceResult } from './convergence-result.js';

const PROGRESS_INTERVAL_MS = 1000;
const MIGRATE_TIMEOUT_MS = 6 * 3600_000;
/** After an abort virsh still says goodbye to the destination; over a dead link that can hang. */
const EXIT_AFTER_ABORT_MS = 45_000;
const SETUP_GRACE_MS = 90_000;

export interface LiveCopyResult {
  last: MigrationProgress | null;
  iterations: number;
  maxThrottlePercent: number;
  /** The allowed downtime when the move ended. */
  downtimeLimitMs: number;
  postcopy: boolean;
  /** What the policy did, in order, with the second it did it. */
  actions: { atSec: number; kind: string; detail: string }[];
  averageBps: number | null;
  /** How the memory was copied; with "paused", how long the guest did not run (pause here → resume there). */
  memoryCopy: 'live' | 'paused';
  guestPausedMs: number | null;
}

/** The phases the page and the SSE stream show, in the order they happen. */
export type MigrationPhase = 'measuring' | 'disk-copy' | 'memory' | 'postcopy' | 'switch-over' | 'verifying';

/**
 * `virsh migrate --live --copy-storage-all` under a convergence policy: about once a
 * second domjobinfo is read, the policy step function (src/domain/convergence) decides,
 * and its actions are carried out with migrate-setmaxdowntime, migrate-postcopy or an
 * abort. A copy that moves no data for `migrationStallTimeoutSec` is aborted as well,
 * so a cut link fails the job instead of hanging it.
 */
export async function runLiveCopy(ctx: NodeContext, target: { name: string; uuid: string }, peer: PeerNode, job: JobContext, step: () => string, copyTargets: readonly string[], plan: ConvergencePlan): Promise<LiveCopyResult> {
  const uri = ctx.config.libvirtUri;
  const cfg = ctx.config.convergence;
  const { name: vm, uuid } = target;
  const s: PolicySettings = plan.settings;
  // A VM paused for the whole copy sends its memory once: nothing for a policy to steer but the budget.
  const paused = plan.memoryCopy.mode === 'paused';
  const throttle = s.policy !== 'strict' && !paused;
  const postcopy = s.policy === 'fast-finish' && !paused;
  const args = buildMigrateArgs({
    sourceUri: uri, uuid, destUri: peer.libvirtUri, dataAddress: peer.config.dataAddress, mode: 'live', copyTargets,
    tls: ctx.config.dataTransport === 'tls',
    bandwidthMiBps: plan.choice.bandwidthMiBps || undefined,
    autoConverge: throttle ? { initialPercent: cfg.throttleInitialPercent, incrementPercent: cfg.throttleIncrementPercent } : undefined,
    postcopy,
    // multifd and post-copy do not mix in QEMU 7.2.
    parallelConnections: !postcopy && cfg.multifdConnections >= 2 ? cfg.multifdConnections : undefined,
    xbzrleCacheBytes: plan.xbzrle.cacheBytes ?? undefined,
  });
  const killer = new AbortController();
  let stalledFor: number | null = null;
  let budgetReason: string | null = null;
  const abortCopy = async () => {
    await ctx.run('virsh', buildJobAbortArgs(uri, uuid), { timeoutMs: 30_000, check: false });
    setTimeout(() => killer.abort(), EXIT_AFTER_ABORT_MS).unref();
  };
  job.onAbort(abortCopy);

  let pausedAt: number | null = null;
  // A VM the admin paused stays paused, and is not resumed by kvm-ferry afterwards.
  if (paused && (await localSide(ctx, uuid))?.state === 'running') {
    // Before the copy starts, or a store between QEMU's first dirty-bitmap sync and the pause could be lost.
    await ctx.run('virsh', buildSuspendArgs(uri, uuid), { timeoutMs: 30_000, failureMessage: `Could not pause ${vm} for its copy.` });
    pausedAt = Date.now();
    // After a restart the reconciler resumes it where libvirt left it (settle.ts).
    job.record({ pausedForCopy: true });
    job.progress({ step: step(), phase: 'disk-copy', percent: 0, paused: true }, `${vm} is paused for its copy to ${peer.name}…`);
  }
  if (job.aborted) {
    // Asked while the VM was being paused, before libvirt had a job to abort. The failure's
    // settle step (settle.ts) resumes it here, as after any failed move.
    throw new AppError('LIBVIRT_FAILED', `the migration of ${vm} was aborted before it started.`);
  }
  const started = Date.now();
  const migrating = ctx.run('virsh', args, { timeoutMs: MIGRATE_TIMEOUT_MS, signal: killer.signal, failureMessage: `Migration of ${vm} to ${peer.name} failed while copying.` });
  const settled = { done: false };
  void migrating.finally(() => (settled.done = true)).catch(() => undefined);

  const stallMs = ctx.config.migrationStallTimeoutSec * 1000;
  const ramBytes = plan.ramBytes;
  let state = initialPolicyState(s);
  let downtimeSet = false;
  const result: LiveCopyResult = { last: null, iterations: 0, maxThrottlePercent: 0, downtimeLimitMs: state.downtimeMs, postcopy: false, actions: [], averageBps: null, memoryCopy: paused ? 'paused' : 'live', guestPausedMs: null };
  if (paused) result.actions.push({ atSec: 0, kind: 'pause', detail: plan.memoryCopy.reason ?? 'paused for the copy' });
  const note = (kind: string, detail: string) => result.actions.push({ atSec: Math.round((Date.now() - started) / 100) / 10, kind, detail });
  let lastMovedAt = Date.now();
  let lastBytes = -1;
  const act = async (a: PolicyAction) => {
    if (a.kind === 'set-downtime') {
      const r = await ctx.run('virsh', buildSetMaxDowntimeArgs(uri, uuid, a.ms), { timeoutMs: 15_000, check: false });
      if (r.exitCode === 0) result.downtimeLimitMs = a.ms;
      note('downtime', `${a.why}: allowed downtime ${a.ms} ms${r.exitCode === 0 ? '' : ' (libvirt refused)'}`);
    } else if (a.kind === 'postcopy') {
      const r = await ctx.run('virsh', buildPostcopyArgs(uri, uuid), { timeoutMs: 30_000, check: false });
      if (r.exitCode === 0) result.postcopy = true;
      note('postcopy', `${a.why}: switched to post-copy${r.exitCode === 0 ? '' : ` — libvirt refused: ${r.stderr.trim().split('\n')[0]}`}`);
    } else {
      budgetReason = a.why;
      note('abort', a.why);
      ctx.log.warn('migration over its budget; aborting it', { vm, peer: peer.name, policy: s.policy, budgetSec: s.budgetSec });
      await abortCopy();
    }
  };

  let abortsSent = 0;
  while (!settled.done) {
    await Promise.race([migrating.catch(() => undefined), ctx.sleep(PROGRESS_INTERVAL_MS)]);
    if (settled.done) break;
    const p = await jobInfo(ctx, uuid);
    // An abort asked before libvirt had started its job found nothing to abort: ask again
    // now that the job exists (a few times, then the kill after EXIT_AFTER_ABORT_MS decides).
    if (job.aborted && p && abortsSent < 5) {
      abortsSent++;
      await ctx.run('virsh', buildJobAbortArgs(uri, uuid), { timeoutMs: 30_000, check: false });
    }
    if (p) {
      if (!downtimeSet && !paused) {
        // The job exists now: the policy's starting downtime replaces QEMU's default of 300 ms.
        downtimeSet = true;
        const r = await ctx.run('virsh', buildSetMaxDowntimeArgs(uri, uuid, state.downtimeMs), { timeoutMs: 15_000, check: false });
        if (r.exitCode !== 0) result.downtimeLimitMs = 300;
      }
      result.last = p;
      result.iterations = Math.max(result.iterations, p.memoryIteration ?? 0);
      result.maxThrottlePercent = Math.max(result.maxThrottlePercent, p.throttlePercent ?? 0);
      const step1 = policyStep(s, state, { elapsedMs: Date.now() - started, iteration: p.memoryIteration && p.memoryIteration > 0 ? p.memoryIteration : null, memoryRemainingBytes: p.memoryRemainingBytes, postcopyActive: result.postcopy });
      state = step1.state;
      if (!job.aborted && budgetReason === null) for (const a of step1.actions) if (!paused || a.kind === 'abort') await act(a);
      const view = progressView(p, ramBytes, plan, state.downtimeMs, result, s);
      job.progress({ step: step(), ...p, ...view }, headline(vm, peer.name, view));
      if (p.dataProcessedBytes !== lastBytes) {
        lastBytes = p.dataProcessedBytes;
        lastMovedAt = Date.now();
      }
    }
    // Before the first byte moves, libvirt is still connecting and starting the destination
    // QEMU (seconds on a busy host): that phase gets a longer grace than a stalled copy.
    const limit = lastBytes > 0 ? stallMs : Math.max(SETUP_GRACE_MS, 3 * stallMs);
    if (stalledFor === null && budgetReason === null && !job.aborted && Date.now() - lastMovedAt > limit) {
      stalledFor = Date.now() - lastMovedAt;
      ctx.log.warn('migration stalled; aborting it', { vm, peer: peer.name, stalledMs: stalledFor });
      await abortCopy();
    }
  }
  const elapsedSec = (Date.now() - started) / 1000;
  // The loop has ended: the last sample is final, for a finished move and a failed one alike.
  if (result.last && elapsedSec > 0) result.averageBps = Math.round(result.last.dataProcessedBytes / elapsedSec);
  try {
    await migrating;
  } catch (e) {
    // Failed: the VM is still here, and the settle step resumes it (waiting for libvirt to let
    // go of it). The destination is never resumed: a half-arrived copy there is paused too.
    job.record({ convergence: { ...convergenceResult(plan, result, null, result.last?.dataProcessedBytes ?? 0, Date.now() - started), outcome: 'failed' } });
    if (budgetReason !== null) {
      const perGiB = `${ctx.config.convergence.budgetSecPerGiB} s per GiB of RAM and disk`;
      throw new AppError('LIBVIRT_FAILED', `${budgetReason} (${s.policy} policy, ${perGiB}), so it was stopped`, { cause: e, detail: (e as AppError).detail ?? String(e) });
    }
    if (stalledFor !== null) {
      throw new AppError('LIBVIRT_FAILED', `no data reached ${peer.name} for ${Math.round(stalledFor / 1000)} s, so it was stopped; check the network between the nodes.`, { cause: e, detail: (e as AppError).detail ?? String(e) });
    }
    throw e;
  }
  if (pausedAt !== null) {
    await resumeArrived(peer, uuid, vm, ctx);
    result.guestPausedMs = Date.now() - pausedAt;
  }
  job.progress({ step: step(), phase: 'switch-over', percent: 99.9 }, `${vm} switched over to ${peer.name}; verifying…`);
  return result;
}

export interface ProgressView {
  phase: MigrationPhase;
  percent: number;
  memoryPass: number | null;
  throughputBps: number | null;
  dirtyRateBps: number | null;
  remainingBytes: number;
  throttlePercent: number;
  downtimeLimitMs: number;
  /** From the model, not remaining ÷ speed; null when pre-copy is not converging. */
  etaSec: number | null;
  converging: boolean;
  /** What the policy is doing about a pre-copy that does not converge, in words (or why the VM is paused). */
  policyNote: string | null;
  policy: string;
  /** The VM is paused for the whole copy (memory-copy.ts). */
  paused: boolean;
}

/** What the page shows for one sample. Percent counts memory from the VM's RAM even before QEMU starts on it, so it never jumps back. */
export function progressView(p: MigrationProgress, ramBytes: number, plan: ConvergencePlan, downtimeLimitMs: number, r: LiveCopyResult, s: PolicySettings): ProgressView {
  const memTotal = Math.max(p.memoryTotalBytes ?? 0, ramBytes);
  const diskTotal = p.diskTotalBytes ?? 0;
  const memStarted = (p.memoryTotalBytes ?? 0) > 0;
  const memRemaining = memStarted ? (p.memoryRemainingBytes ?? 0) : memTotal;
  const diskRemaining = Math.max(0, diskTotal - (p.diskProcessedBytes ?? 0));
  const remaining = memRemaining + diskRemaining;
  const total = memTotal + diskTotal;
  const pass = memStarted ? p.memoryIteration ?? 1 : null;
  // Everything sent while libvirt's job still runs: QEMU is stopping the source and handing
  // over (a paused copy's last sample says 100 % here) — no longer "copying memory".
  const phase: MigrationPhase = r.postcopy ? 'postcopy' : !memStarted ? 'disk-copy' : remaining === 0 ? 'switch-over' : 'memory';
  const bps = p.speedBps && p.speedBps > 0 ? p.speedBps : plan.prediction?.effectiveBps ?? null;
  // QEMU reports the dirty rate from the end of the first pass; before that the pre-flight figure stands.
  const dirty = p.dirtyRateBps && p.dirtyRateBps > 0 ? p.dirtyRateBps : plan.prediction?.dirtyBps ?? null;
  let eta: number | null = null;
  let converging = true;
  if (bps && r.postcopy) eta = Math.round(memRemaining / bps);
  else if (bps) {
    const f = forecast({ ramBytes: memTotal, touchedRamBytes: memRemaining, diskBytes: diskRemaining, dirtyBps: (dirty ?? 0) * (1 - (p.throttlePercent ?? 0) / 100), linkBps: bps, capBps: null, settings: { ...s, budgetSec: Infinity, maxDowntimeMs: Math.max(downtimeLimitMs, s.maxDowntimeMs) } }, s.policy === 'strict' ? 'strict' : s.policy);
    eta = f.totalSec === null ? null : Math.round(f.totalSec);
    converging = memStarted && pass !== null && pass > 1 ? (dirty ?? 0) * (1 - (p.throttlePercent ?? 0) / 100) < bps : true;
  }
  const throttleNow = p.throttlePercent ?? 0;
  let policyNote: string | null = null;
  const paused = r.memoryCopy === 'paused';
  if (paused) {
    // Nothing is re-dirtied: one pass, and the time left is simply what is left over the link.
    converging = true;
    eta = bps ? Math.round(remaining / bps) : null;
    policyNote = 'The VM is paused for the whole copy (an emulated guest on a QEMU that can lose its memory writes during a live copy); it resumes on the destination.';
  } else if (!converging) {
    policyNote = s.policy === 'strict' ? `Pre-copy is not converging (the VM writes memory faster than the link carries it); the strict policy changes nothing and stops at its ${s.budgetSec} s budget.`
      : `Pre-copy is not converging; the ${s.policy} policy allows ${downtimeLimitMs} ms of pause${throttleNow ? ` and slows the VM by ${throttleNow} %` : ' and will slow the VM'}${s.policy === 'fast-finish' ? `, then switches to post-copy` : ''} (budget ${s.budgetSec} s).`;
  }
  return {
    phase, percent: truthfulPercent(total - remaining, total, remaining), memoryPass: pass, throughputBps: bps, dirtyRateBps: dirty, remainingBytes: remaining,
    throttlePercent: throttleNow, downtimeLimitMs, etaSec: eta, converging, policyNote, policy: s.policy, paused,
  };
}

function headline(vm: string, to: string, v: ProgressView): string {
  const what = v.phase === 'disk-copy' ? 'copying disks' : v.phase === 'postcopy' ? 'post-copy' : v.paused ? 'copying memory' : `memory pass ${v.memoryPass ?? 1}`;
  return `Migrating ${vm} to ${to}: ${v.percent}% (${what}${v.paused ? ', VM paused' : ''})`;
}

/**
 * Resumes, where it arrived, a VM kvm-ferry paused for its copy, once libvirt finished the
 * move (libvirt leaves it paused there). Best effort: verification then finds a VM that is
 * not running and says so. A failed move is resumed on the source by the settle step.
 */
async function resumeArrived(peer: PeerNode, uuid: string, vm: string, ctx: NodeContext): Promise<void> {
  try {
    const there = await peerSide(peer, uuid);
    if (there?.state === 'paused') await peer.virsh(['resume', '--domain', uuid], { timeoutMs: 30_000, failureMessage: `Could not resume ${vm} on ${peer.name}.` });
  } catch (e) {
    ctx.log.warn('a VM paused for its copy could not be resumed where it arrived', { vm, uuid, peer: peer.name, error: String(e) });
  }
}

async function jobInfo(ctx: NodeContext, uuid: string): Promise<MigrationProgress | null> {
  try {
    const r = await ctx.run('virsh', buildJobInfoArgs(ctx.config.libvirtUri, uuid, false), { timeoutMs: 10_000, check: false });
    return r.exitCode === 0 ? parseDomJobInfoRaw(r.stdout) : null;
  } catch {
    return null;
  }
}

/** True while libvirt runs a job (e.g. an outgoing migration) on the VM. */
export async function hasActiveJob(ctx: NodeContext, uuid: string): Promise<boolean> {
  const r = await ctx.run('virsh', buildJobInfoArgs(ctx.config.libvirtUri, uuid, false), { timeoutMs: 10_000, check: false });
  // A job holding the domain's lock makes the query itself time out: that is a job too.
  if (r.exitCode !== 0) return /state change lock|Timed out during operation/i.test(r.stderr);
  const type = /^Job type:\s*(\S+)/m.exec(r.stdout)?.[1] ?? 'None';
  return type !== 'None' && type !== '0';
}

/** For the janitor: resumes a VM paused for a copy that failed, once libvirt has no job on it any more. */
export async function resumeWhenFree(ctx: NodeContext, uuid: string): Promise<'resumed' | 'running' | 'gone' | 'busy'> {
  const side = await localSide(ctx, uuid);
  if (!side) return 'gone';
  if (side.state === 'running') return 'running';
  if (side.state !== 'paused') return 'gone';
  if (await hasActiveJob(ctx, uuid)) return 'busy';
  const r = await ctx.run('virsh', buildResumeArgs(ctx.config.libvirtUri, uuid), { check: false, timeoutMs: 30_000 });
  return r.exitCode === 0 ? 'resumed' : 'busy';
}
