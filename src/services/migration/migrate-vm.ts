import { unlink } from 'node:fs/promises';
import { AppError, badInput, describeError } from '../../errors.js';
import { requireVmName } from '../../domain/names.js';
import { requireChoice } from '../../domain/numbers.js';
import { parseDomJobInfoRaw, type MigrationProgress } from '../../domain/migration-progress.js';
import type { Job } from '../../domain/job.js';
import { vmStateFromLibvirt } from '../../domain/vm.js';
import { domainLookup, domainResume } from '../../adapters/libvirt/domain.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import { VmBusyError } from '../../adapters/db/jobs-repository.js';
import type { JobContext, JobOutcome } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory, PeerNode } from './peer-nodes.js';
import { runPreflight, type MigrationDisk, type MigrationMode, type PreflightResult } from './preflight.js';
import { hasActiveJob, runLiveCopy } from './live-copy.js';
import { copyDisksOffline, moveDefinitionOffline } from './offline-copy.js';
import { removeLeftovers, type Leftovers } from './leftovers.js';
import { failureSentence } from './failure-sentence.js';

export interface Plan {
  vmName: string;
  uuid: string;
  peer: PeerNode;
  mode: MigrationMode;
  preflight: PreflightResult;
}

/** Moves a VM of this node to a peer, as a job that either moves it or leaves it where it was. */
export class VmMigrator {
  constructor(
    private readonly ctx: NodeContext,
    private readonly inventory: VmInventory,
    private readonly peers: PeerDirectory,
    private readonly jobsRepo: JobsRepository,
  ) {}

  /** Pre-flight only: what would happen, with a go/no-go reason per check. */
  async check(rawName: unknown, body: Record<string, unknown>): Promise<PreflightResult & { vm: string; from: string; to: string; mode: MigrationMode }> {
    const plan = await this.plan(rawName, body);
    return { vm: plan.vmName, from: this.ctx.config.nodeName, to: plan.peer.name, mode: plan.mode, ...plan.preflight };
  }

  async request(rawName: unknown, body: Record<string, unknown>, user: string | null): Promise<Job> {
    const plan = await this.plan(rawName, body);
    const from = this.ctx.config.nodeName;
    const req = {
      kind: 'migrate' as const, node: from, vm: plan.vmName, user,
      message: `Migrating ${plan.vmName} to ${plan.peer.name}…`,
      params: { to: plan.peer.name, mode: plan.mode, uuid: plan.uuid, disks: plan.preflight.disks.map((d) => d.path), checks: plan.preflight.checks },
    };
    if (!plan.preflight.go) {
      const failed = plan.preflight.checks.filter((c) => !c.ok);
      const message = `Migration of ${plan.vmName} to ${plan.peer.name} refused: ${failed[0]!.message}`;
      const detail = failed.map((c) => `${c.id}: ${c.message}`).join('\n');
      // A refusal is an outcome too: it goes in the activity log, and nothing was touched.
      let job: Job | null = null;
      try {
        job = this.jobsRepo.refused(req, message, detail);
      } catch (e) {
        if (!(e instanceof VmBusyError)) throw e;
      }
      throw new AppError('VM_STATE_CONFLICT', message, { detail: job ? `${detail}\n(job #${job.id})` : detail });
    }
    return this.ctx.jobs.submit(req, (job) => this.migrate(plan, job));
  }

  private async plan(rawName: unknown, body: Record<string, unknown>): Promise<Plan> {
    const vmName = requireVmName(rawName);
    const to = body.to;
    if (typeof to !== 'string' || to === '') throw badInput('to', 'Pick the destination node.');
    if (to === this.ctx.config.nodeName) throw badInput('to', `VM ${vmName} is already on node ${to}.`);
    const peer = this.peers.get(to);
    if (!peer) throw new AppError('NODE_NOT_FOUND', `Node ${to} is not a configured peer of ${this.ctx.config.nodeName}.`, { field: 'to' });
    const vm = await this.inventory.get(vmName);
    // Without an explicit mode: live for a running VM, offline for a shut-off one.
    const mode = requireChoice('mode', body.mode, ['live', 'offline'] as const, vm.state === 'shut-off' ? 'offline' : 'live');
    const snap = await domainLookup(this.ctx.conn, vmName);
    if (!snap) throw new AppError('VM_NOT_FOUND', `VM ${vmName} does not exist on node ${this.ctx.config.nodeName}.`);
    const preflight = await runPreflight({
      vm, description: snap.description, sourceNode: this.ctx.config.nodeName, peer, mode, jobs: this.jobsRepo, qemuImg: this.ctx.qemuImg,
      probeControlChannel: () => this.probeControlChannel(peer),
      libvirtHasJob: () => hasActiveJob(this.ctx, vmName).catch(() => false),
    });
    return { vmName, uuid: vm.uuid, peer, mode, preflight };
  }

  /** The exact path virsh migrate takes to the peer's libvirtd (qemu+ssh, pinned host key). */
  private async probeControlChannel(peer: PeerNode): Promise<string | null> {
    const r = await this.ctx.run('virsh', ['-c', peer.libvirtUri, 'hostname'], { timeoutMs: 20_000, check: false }).catch((e: unknown) => ({ exitCode: -1, stderr: describeError(e), stdout: '' }));
    return r.exitCode === 0 ? null : (r.stderr || r.stdout).trim().split('\n')[0] ?? 'no answer';
  }

  private async migrate(plan: Plan, job: JobContext): Promise<JobOutcome> {
    const { vmName: name, peer, mode } = plan;
    const started = Date.now();
    const created: string[] = [];
    let step = 'disks';
    // Where the time went, per step, for the job record (and for whoever tunes a link).
    const stepMs: Record<string, number> = {};
    let stepStarted = started;
    const enter = (next: string) => {
      stepMs[step] = (stepMs[step] ?? 0) + (Date.now() - stepStarted);
      stepStarted = Date.now();
      step = next;
    };
    try {
      let last: MigrationProgress | null = null;
      let copiedBytes: number | null = null;
      if (mode === 'live') {
        job.progress({ step, percent: 0 }, `Creating sparse disks for ${name} on ${peer.name}…`);
        for (const d of plan.preflight.disks) {
          // Recorded before it exists: a failure half-way through still removes it.
          created.push(d.path);
          job.record({ createdOnDestination: [...created] });
          await createRemoteDisk(peer, d);
        }
        enter('copy');
        last = await runLiveCopy(this.ctx, name, peer, job, () => step);
      } else {
        enter('copy');
        copiedBytes = await copyDisksOffline(peer, plan.preflight.disks, job, (path) => {
          created.push(path);
          job.record({ createdOnDestination: [...created] });
        });
        enter('define');
        await moveDefinitionOffline(this.ctx, name, peer);
      }

      enter('verify');
      // Independent questions to the destination, asked at once over the shared connection.
      const [, completedInfo, destAllocated] = await Promise.all([
        this.verifyMoved(plan),
        mode === 'live' ? peer.virsh(['domjobinfo', '--domain', name, '--completed', '--rawstats'], { check: false }) : null,
        remoteAllocated(peer, plan.preflight.disks),
      ]);
      const completed = completedInfo ? parseDomJobInfoRaw(completedInfo.stdout) : null;

      enter('cleanup');
      const removed = await this.removeSourceDisks(plan.preflight.disks.map((d) => d.path));
      this.inventory.invalidate();
      const result = {
        from: this.ctx.config.nodeName, to: peer.name, mode, durationMs: Date.now() - started,
        downtimeMs: completed?.downtimeMs ?? null,
        // libvirt's completed statistics: what crossed the wire. The live samples count the
        // disk mirror's progress over the whole virtual size, holes included.
        bytesMoved: completed?.dataProcessedBytes ?? last?.dataProcessedBytes ?? copiedBytes,
        sourceAllocatedBytes: plan.preflight.disks.reduce((a, d) => a + d.allocatedBytes, 0),
        destinationAllocatedBytes: destAllocated,
        sourceDisksRemoved: removed,
        stepMs: (enter('done'), stepMs),
      };
      job.progress({ step: 'done', ...(last ?? {}), percent: 100 });
      const down = result.downtimeMs === null ? '' : `, ${result.downtimeMs} ms downtime`;
      const verb = mode === 'live' ? 'migrated' : 'moved (offline)';
      return { message: `VM ${name} ${verb} to ${peer.name} in ${(result.durationMs / 1000).toFixed(1)} s${down}.`, result };
    } catch (e) {
      const outcome = await this.restore(plan, created, job);
      const why = job.aborted ? `Migration of ${name} to ${peer.name} was aborted.` : failureSentence(e, step, name, peer.name);
      throw new AppError('LIBVIRT_FAILED', `${why} ${outcome}`, { detail: describeError(e) + (e instanceof AppError && e.detail ? `\n${e.detail}` : ''), cause: e });
    }
  }

  /** Success means: defined on the destination (running, for live) and gone from here. */
  private async verifyMoved(plan: Plan): Promise<void> {
    const { vmName: name, peer, mode } = plan;
    const [there, stillHere] = await Promise.all([peer.virsh(['domstate', '--domain', name], { check: false }), domainLookup(this.ctx.conn, name)]);
    const destState = there.stdout.trim();
    const wanted = mode === 'live' ? 'running' : 'shut off';
    if (destState !== wanted || stillHere) {
      throw new AppError('LIBVIRT_FAILED', `the result could not be verified (on ${peer.name}: ${destState || 'absent'}; on ${this.ctx.config.nodeName}: ${stillHere ? 'still defined' : 'gone'})`);
    }
  }

  /** Only after the destination is verified; kept when the config says so. */
  async removeSourceDisks(paths: string[]): Promise<string[]> {
    if (this.ctx.config.keepSourceDisks) return [];
    const removed: string[] = [];
    for (const p of paths) {
      await unlink(p).then(() => removed.push(p), (e: unknown) => this.ctx.log.warn('source disk not removed', { path: p, error: String(e) }));
    }
    return removed;
  }

  /**
   * After a failure: the VM must be running here, nothing of it left there. Destination
   * state is only removed while the source still has the VM — never the last copy. If the
   * destination cannot be reached now, the janitor retries later.
   */
  async restore(plan: Pick<Plan, 'vmName' | 'uuid' | 'peer'>, created: string[], job: Pick<JobContext, 'record'>): Promise<string> {
    const { vmName: name, peer } = plan;
    const here = await domainLookup(this.ctx.conn, name).catch(() => null);
    if (!here) {
      return `VM ${name} is no longer on ${this.ctx.config.nodeName}; check node ${peer.name} before doing anything else.`;
    }
    if (vmStateFromLibvirt(here.stateCode) === 'paused') await domainResume(this.ctx.conn, name).catch(() => undefined);
    const state = vmStateFromLibvirt((await domainLookup(this.ctx.conn, name).catch(() => here))?.stateCode ?? here.stateCode);
    const leftovers: Leftovers = { peer: peer.name, vm: name, uuid: plan.uuid, paths: created };
    const where = `VM ${name} is still ${state === 'running' ? 'running' : state} on ${this.ctx.config.nodeName} with its disks intact.`;
    this.inventory.invalidate();
    try {
      await removeLeftovers(peer, leftovers);
      job.record({ leftoversRemoved: true });
      return where;
    } catch (e) {
      job.record({ cleanupPending: true, leftovers });
      this.ctx.log.warn('could not clean up the destination yet', { peer: peer.name, error: describeError(e) });
      const what = created.length ? ` (${created.join(', ')})` : '';
      return `${where} Node ${peer.name} cannot be reached to remove what the migration left there${what}; kvm-ferry retries until it can.`;
    }
  }
}

async function createRemoteDisk(peer: PeerNode, d: MigrationDisk): Promise<void> {
  const opts = d.format === 'qcow2' ? ['-o', 'preallocation=off'] : [];
  await peer.shell.exec('qemu-img', ['create', '-q', '-f', d.format, ...opts, d.path, String(d.virtualBytes)], {
    timeoutMs: 60_000,
    failureMessage: `Could not create the disk ${d.path} on node ${peer.name}.`,
  });
}

async function remoteAllocated(peer: PeerNode, disks: MigrationDisk[]): Promise<number | null> {
  if (!disks.length) return 0;
  const r = await peer.shell.exec('stat', ['-c', '%b %B', '--', ...disks.map((d) => d.path)], { check: false });
  if (r.exitCode !== 0) return null;
  return r.stdout.split('\n').filter(Boolean).reduce((sum, l) => {
    const [blocks, size] = l.split(' ').map(Number);
    return sum + (blocks ?? 0) * (size ?? 512);
  }, 0);
}
