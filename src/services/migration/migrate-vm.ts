import { unlink } from 'node:fs/promises';
import { AppError, badInput, describeError } from '../../errors.js';
import { requireVmName } from '../../domain/names.js';
import { parseBool, requireChoice } from '../../domain/numbers.js';
import { parseDomJobInfoRaw, type MigrationProgress } from '../../domain/migration-progress.js';
import type { Job } from '../../domain/job.js';
import type { PlanItem, PlanOptions } from '../../domain/migration-plan/types.js';
import { domainLookup } from '../../adapters/libvirt/domain.js';
import { buildCreateArgs } from '../../adapters/qemu-img/qemu-img.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import { VmBusyError } from '../../adapters/db/jobs-repository.js';
import type { JobContext, JobOutcome } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory, PeerNode } from './peer-nodes.js';
import { dataTransportCheck } from './data-transport.js';
import { runPreflight, type MigrationDisk, type MigrationMode, type PreflightResult } from './preflight.js';
import { hasActiveJob, runLiveCopy, type LiveCopyResult } from './live-copy.js';
import { copyFilesToPeer, moveDefinitionOffline } from './offline-copy.js';
import { failureSentence } from './failure-sentence.js';
import { gatherPlanFacts } from './plan-facts.js';
import { createExclusive, type CreatedFile } from './remote-files.js';
import { migrationDevices } from './migration-devices.js';
import { verifyMoved } from './verify-move.js';
import { MoveSettler, type EjectedMedia } from './settle.js';
import { ejectMedia } from './media.js';
import { localSide } from './vm-sides.js';
import { incomingRefusal } from '../maintenance/peer-state.js';
import { convergenceResult } from './convergence-result.js';
import { convergencePreflight, parseConvergenceChoice, type ConvergenceChoice, type ConvergencePlan } from './convergence-preflight.js';

/** One migration as asked and checked: everything the job needs, decided before it starts. */
export interface MoveRequest {
  vmName: string;
  uuid: string;
  peer: PeerNode;
  mode: MigrationMode;
  options: PlanOptions;
  preflight: PreflightResult;
  /** Live moves: policy, bandwidth cap, measurements and prediction. */
  convergence: ConvergencePlan | null;
}

const STEP_WORDS: Record<string, (vm: string, to: string, from: string) => string> = {
  define: (vm, to) => `Moving the definition of ${vm} to ${to}…`,
  verify: (vm, to) => `Verifying ${vm} on ${to}…`,
  cleanup: (vm, to, from) => `${vm} verified on ${to}; removing its moved files from ${from}…`,
};

interface Asked {
  vmName: string;
  peer: PeerNode;
  options: PlanOptions;
  mode: MigrationMode | null;
  convergence: ConvergenceChoice;
}

/** Steps from which on libvirt may have started the VM on the destination. */
const SWITCH_OVER_STEPS = new Set(['copy', 'define', 'verify', 'cleanup']);

/** Moves a VM of this node to a peer, as a job that either moves it or leaves it where it was. */
export class VmMigrator {
  readonly settler: MoveSettler;

  constructor(
    private readonly ctx: NodeContext,
    private readonly inventory: VmInventory,
    private readonly peers: PeerDirectory,
    private readonly jobsRepo: JobsRepository,
  ) {
    this.settler = new MoveSettler(ctx, inventory);
  }

  /** Pre-flight only: what would happen, with a go/no-go reason per check and one decision per device. */
  async check(rawName: unknown, body: Record<string, unknown>): Promise<PreflightResult & { vm: string; from: string; to: string; mode: MigrationMode } & Record<string, unknown>> {
    const req = await this.prepare(await this.validate(rawName, body), null);
    return { vm: req.vmName, from: this.ctx.config.nodeName, to: req.peer.name, mode: req.mode, ...req.preflight, ...convergenceView(req.convergence) };
  }

  /**
   * The VM's job lock is taken first and pre-flight runs under it, so nothing can change
   * the VM between "go" and the first step; a refusal releases it as a failed job.
   */
  async request(rawName: unknown, body: Record<string, unknown>, user: string | null): Promise<Job> {
    // Bad input is refused before anything is locked or recorded.
    const asked = await this.validate(rawName, body);
    const { vmName } = asked;
    const to = asked.peer.name;
    const base = { kind: 'migrate' as const, node: this.ctx.config.nodeName, vm: vmName, user };
    let job: Job;
    try {
      job = this.jobsRepo.start({ ...base, message: `Checking the migration of ${vmName} to ${to}…`, params: { to } });
    } catch (e) {
      if (e instanceof VmBusyError) throw new AppError('VM_BUSY', `VM ${vmName} is busy with job #${e.runningJob.id} (${e.runningJob.kind}); wait for it to finish.`);
      throw e;
    }
    let req: MoveRequest;
    try {
      // Pre-flight measures the guest and the link (a few seconds): the job says so.
      this.jobsRepo.setProgress(job.id, { step: 'preflight', phase: 'measuring', percent: 0 }, `Checking the migration of ${vmName} to ${to} and measuring the VM and the link…`);
      req = await this.prepare(asked, job.id);
    } catch (e) {
      this.jobsRepo.finish(job.id, 'failed', e instanceof AppError ? e.message : `Pre-flight failed: ${describeError(e)}`, e instanceof AppError ? e.detail ?? null : describeError(e));
      throw e;
    }
    const params = {
      to: req.peer.name, mode: req.mode, uuid: req.uuid, options: req.options,
      plan: req.preflight.plan, checks: req.preflight.checks,
      ...convergenceView(req.convergence),
      // What a completed move removes here (the reconciler needs it after a restart).
      removeAfter: removableAfterMove(req.preflight.disks, req.preflight.plan?.items ?? []),
    };
    this.jobsRepo.setParams(job.id, params);
    if (!req.preflight.go) {
      const failed = req.preflight.checks.filter((c) => !c.ok);
      const message = `Migration of ${vmName} to ${req.peer.name} refused: ${failed[0]!.message}`;
      const detail = failed.map((c) => `${c.id}: ${c.message}`).join('\n');
      // A refusal is an outcome too: it goes in the activity log, and nothing was touched.
      this.jobsRepo.finish(job.id, 'failed', message, detail);
      throw new AppError('VM_STATE_CONFLICT', message, { detail: `${detail}\n(job #${job.id})` });
    }
    this.jobsRepo.setProgress(job.id, { step: 'preflight', percent: 0 }, `Migrating ${vmName} to ${req.peer.name}…`);
    return this.ctx.jobs.runReserved(this.jobsRepo.get(job.id)!, (jc) => this.migrate(req, jc));
  }

  private requirePeer(vmName: string, body: Record<string, unknown>): PeerNode {
    const to = body.to;
    if (typeof to !== 'string' || to === '') throw badInput('to', 'Pick the destination node.');
    if (to === this.ctx.config.nodeName) throw badInput('to', `VM ${vmName} is already on node ${to}.`);
    const peer = this.peers.get(to);
    if (!peer) throw new AppError('NODE_NOT_FOUND', `Node ${to} is not a configured peer of ${this.ctx.config.nodeName}.`, { field: 'to' });
    return peer;
  }

  private async validate(rawName: unknown, body: Record<string, unknown>): Promise<Asked> {
    const vmName = requireVmName(rawName);
    const peer = this.requirePeer(vmName, body);
    const options: PlanOptions = { ejectMedia: parseBool('ejectMedia', body.ejectMedia, false), copyMedia: parseBool('copyMedia', body.copyMedia, false) };
    const mode = body.mode === undefined || body.mode === '' ? null : requireChoice('mode', body.mode, ['live', 'offline'] as const, 'live');
    const convergence = parseConvergenceChoice(body, this.ctx.config.convergence);
    await this.inventory.get(vmName);
    return { vmName, peer, options, mode, convergence };
  }

  private async prepare(asked: Asked, ownJobId: number | null): Promise<MoveRequest> {
    const { vmName, peer, options } = asked;
    // Read again under the lock: the state may have changed since validation.
    const vm = await this.inventory.get(vmName);
    // Without an explicit mode: live for a running VM, offline for a shut-off one.
    const mode = asked.mode ?? (vm.state === 'shut-off' ? 'offline' : 'live');
    const snap = await domainLookup(this.ctx.conn, vmName);
    if (!snap || snap.description.uuid !== vm.uuid) throw new AppError('VM_NOT_FOUND', `VM ${vmName} does not exist on node ${this.ctx.config.nodeName}.`);
    const devices = await migrationDevices(this.ctx, vm.uuid, snap.description, mode);
    const preflight = await runPreflight({
      vm, description: snap.description, sourceNode: this.ctx.config.nodeName, peer, mode, jobs: this.jobsRepo, ownJobId, devices, options,
      gatherFacts: () => gatherPlanFacts(this.ctx, peer, devices, mode, vm.uuid),
      probeControlChannel: () => this.probeControlChannel(peer),
      libvirtHasJob: () => hasActiveJob(this.ctx, vm.uuid).catch(() => false),
      checkDataTransport: () => dataTransportCheck(this.ctx.config, this.ctx.config.nodeName, peer),
      destinationTakesVms: () => incomingRefusal(peer),
    });
    let convergence: ConvergencePlan | null = null;
    if (mode === 'live') {
      // Measured only when everything else said go: a refused move costs no link test.
      convergence = await convergencePreflight(this.ctx, { name: vmName, uuid: vm.uuid, memoryMiB: vm.memoryMiB, domainType: snap.description.type, emulator: snap.description.emulator }, peer, preflight.disks, asked.convergence, preflight.go);
      preflight.checks.push(...convergence.checks);
      preflight.go = preflight.checks.every((c) => c.ok);
    }
    return { vmName, uuid: vm.uuid, peer, mode, options, preflight, convergence };
  }

  /** The exact path virsh migrate takes to the peer's libvirtd (qemu+ssh, pinned host key). */
  private async probeControlChannel(peer: PeerNode): Promise<string | null> {
    const r = await this.ctx.run('virsh', ['-c', peer.libvirtUri, 'hostname'], { timeoutMs: 20_000, check: false }).catch((e: unknown) => ({ exitCode: -1, stderr: describeError(e), stdout: '' }));
    return r.exitCode === 0 ? null : (r.stderr || r.stdout).trim().split('\n')[0] ?? 'no answer';
  }

  private async migrate(req: MoveRequest, job: JobContext): Promise<JobOutcome> {
    const { vmName: name, uuid, peer, mode } = req;
    const vmRef = { name, uuid };
    const started = Date.now();
    const created: CreatedFile[] = [];
    const ejected: EjectedMedia[] = [];
    const files = req.preflight.disks;
    const onCreated = (f: CreatedFile) => {
      // Recorded only once the file is ours: cleanup can then never remove another's.
      created.push(f);
      job.record({ createdOnDestination: [...created] });
    };
    let step = 'prepare';
    const stepMs: Record<string, number> = {};
    let stepStarted = started;
    const enter = (next: string) => {
      stepMs[step] = (stepMs[step] ?? 0) + (Date.now() - stepStarted);
      stepStarted = Date.now();
      step = next;
      // The data has all moved by then: the page (and anyone watching) sees which step runs.
      const words = STEP_WORDS[next];
      if (words) job.progress({ step: next, ...(next === 'verify' ? { phase: 'verifying' } : {}), percent: 100 }, words(name, peer.name, this.ctx.config.nodeName));
    };
    try {
      let last: MigrationProgress | null = null;
      let live: LiveCopyResult | null = null;
      let copiedBytes = 0;
      const sums: Record<string, string> = {};
      const items = req.preflight.plan?.items ?? [];
      for (const m of items.filter((i) => i.decision === 'eject')) {
        ejected.push(await ejectMedia(this.ctx, uuid, m, mode === 'live'));
        job.record({ ejectedMedia: [...ejected] });
      }
      const carried = files.filter((f) => f.decision !== 'copy' || mode === 'offline');
      if (mode === 'live') {
        enter('disks');
        job.progress({ step, percent: 0 }, `Preparing the disks of ${name} on ${peer.name}…`);
        for (const d of files.filter((f) => f.decision === 'copy')) {
          onCreated(await createExclusive(peer, d.path));
          await createRemoteImage(peer, d);
        }
      }
      if (carried.length) {
        enter(mode === 'live' ? 'disks' : 'copy');
        const r = await copyFilesToPeer(peer, carried, job, onCreated);
        copiedBytes = r.bytes;
        Object.assign(sums, r.sha256);
      }
      if (mode === 'live') {
        enter('copy');
        live = await runLiveCopy(this.ctx, vmRef, peer, job, () => step, files.filter((f) => f.decision === 'copy').map((f) => f.target!), req.convergence!);
        last = live.last;
      } else {
        // Under the lock since pre-flight, but libvirt can be driven around kvm-ferry (virsh start).
        const now = await localSide(this.ctx, uuid);
        if (now?.state !== 'shut off') throw new AppError('VM_STATE_CONFLICT', `VM ${name} is no longer shut off (${now?.state ?? 'gone'}); it was started while its disks were copied.`);
        enter('define');
        await moveDefinitionOffline(this.ctx, vmRef, peer);
      }

      enter('verify');
      const verified = await verifyMoved(this.ctx, req, items, files, sums, this.ctx.sleep);
      const completed = mode === 'live' ? await completedStats(peer, uuid) : null;

      enter('cleanup');
      const removed = await this.removeSourceFiles(req.preflight.disks, items);
      this.inventory.invalidate();
      const result = {
        from: this.ctx.config.nodeName, to: peer.name, mode, durationMs: Date.now() - started,
        // A VM paused for its whole copy did not run from the pause here to the resume there.
        downtimeMs: live?.guestPausedMs ?? completed?.downtimeMs ?? null,
        // libvirt's completed statistics: what crossed the wire. The live samples count the
        // disk mirror's progress over the whole virtual size, holes included.
        bytesMoved: (completed?.dataProcessedBytes ?? last?.dataProcessedBytes ?? 0) + copiedBytes,
        sourceAllocatedBytes: files.reduce((a, d) => a + d.allocatedBytes, 0),
        destinationAllocatedBytes: verified.destinationAllocatedBytes,
        sourceRemoved: removed,
        ejectedMedia: ejected,
        stepMs: (enter('done'), stepMs),
        ...(live ? { convergence: convergenceResult(req.convergence!, live, completed?.downtimeMs ?? null, (completed?.dataProcessedBytes ?? last?.dataProcessedBytes ?? 0), Date.now() - started, completed ?? last) } : {}),
      };
      job.progress({ step: 'done', ...(last ?? {}), percent: 100 });
      const down = result.downtimeMs === null ? '' : live?.guestPausedMs != null ? `; it was paused for ${(live.guestPausedMs / 1000).toFixed(1)} s while it moved` : `, ${result.downtimeMs} ms downtime`;
      const verb = mode === 'live' ? 'migrated' : 'moved (offline)';
      return { message: `VM ${name} ${verb} to ${peer.name} in ${(result.durationMs / 1000).toFixed(1)} s${down}.`, result };
    } catch (e) {
      const reached = SWITCH_OVER_STEPS.has(step);
      const settled = await this.settler.settle({ vmName: name, uuid, peer, mode, pausedForCopy: req.convergence?.memoryCopy.mode === 'paused' }, created, ejected, job);
      // Once libvirt has started the VM there, "failed while copying" would be the wrong sentence.
      const why = job.aborted ? `Migration of ${name} to ${peer.name} was aborted.`
        : settled.kind === 'attention' && reached ? `Migration of ${name} to ${peer.name} was interrupted after the switch-over (${describeError(e)}).`
          : failureSentence(e, step, name, peer.name);
      if (settled.kind === 'moved') {
        return {
          message: `VM ${name} ${mode === 'live' ? 'migrated' : 'moved (offline)'} to ${peer.name}, but kvm-ferry lost track at the end (${describeError(e)}); ${settled.note}`,
          result: { from: this.ctx.config.nodeName, to: peer.name, mode, durationMs: Date.now() - started, interrupted: true, sourceRemoved: [], sourceKept: req.preflight.disks.map((d) => d.path) },
        };
      }
      const detail = describeError(e) + (e instanceof AppError && e.detail ? `\n${e.detail}` : '');
      throw new AppError('LIBVIRT_FAILED', settled.kind === 'attention' ? `Needs attention: ${why} ${settled.note}` : `${why} ${settled.note}`, { detail, cause: e });
    }
  }

  /** Only after the destination is verified: what the plan copied and no other VM here uses. */
  removeSourceFiles(files: MigrationDisk[], items: PlanItem[]): Promise<string[]> {
    return this.removeSourcePaths(removableAfterMove(files, items));
  }

  /** Removes moved files here (none when the config keeps source disks); says which went. */
  async removeSourcePaths(paths: string[]): Promise<string[]> {
    if (this.ctx.config.keepSourceDisks) return [];
    const removed: string[] = [];
    for (const p of paths) {
      await unlink(p).then(() => removed.push(p), (e: unknown) => this.ctx.log.warn('source file not removed', { path: p, error: String(e) }));
    }
    return removed;
  }
}

/**
 * The VM's own files that moved: its copied disks and carried state (NVRAM, TPM) —
 * never removable media, never a file another VM here uses. After a live move the
 * NVRAM went in the stream and the destination holds QEMU's copy; libvirt leaves the
 * source file behind (seen on libvirt 9.0), stale, so it goes too.
 */
export function removableAfterMove(files: MigrationDisk[], items: PlanItem[]): string[] {
  const moved = files.filter((f) => !f.sharedHere && (f.decision === 'copy' || f.decision === 'copy-first' || (f.decision === 'carry' && (f.item === 'nvram' || f.item.startsWith('tpm:'))))).map((f) => f.path);
  const streamedNvram = items.filter((i) => i.id === 'nvram' && i.decision === 'stream' && i.path).map((i) => i.path!);
  return [...moved, ...streamedNvram];
}

async function createRemoteImage(peer: PeerNode, d: MigrationDisk): Promise<void> {
  // Over the empty file this job just claimed (same inode: qemu-img truncates, not replaces).
  // The plan copies only qcow2 and raw images.
  await peer.shell.exec('qemu-img', buildCreateArgs(d.path, d.virtualBytes, d.format as 'qcow2' | 'raw'), {
    timeoutMs: 60_000,
    failureMessage: `Could not create the disk ${d.path} on node ${peer.name}.`,
  });
}

/** Best effort: statistics never change the outcome of a move that was verified. */
async function completedStats(peer: PeerNode, uuid: string): Promise<MigrationProgress | null> {
  try {
    const r = await peer.virsh(['domjobinfo', '--domain', uuid, '--completed', '--rawstats'], { check: false });
    return r.exitCode === 0 ? parseDomJobInfoRaw(r.stdout) : null;
  } catch {
    return null;
  }
}

/** Policy, cap and prediction as the check answer, the job's params and the page show them. */
function convergenceView(c: ConvergencePlan | null): Record<string, unknown> {
  if (!c) return {};
  return { policy: c.choice.policy, bandwidthMiBps: c.choice.bandwidthMiBps, xbzrle: c.choice.xbzrle, xbzrleCacheBytes: c.xbzrle.cacheBytes, budgetSec: c.budgetSec, memoryCopy: c.memoryCopy, prediction: c.prediction, predictionProblems: c.predictionProblems };
}
