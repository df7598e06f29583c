import { unlink } from 'node:fs/promises';
import { AppError, badInput, describeError } from '../../errors.js';
import { requireVmName } from '../../domain/names.js';
import { requireChoice } from '../../domain/numbers.js';
import { parseDomJobInfoRaw, type MigrationProgress } from '../../domain/migration-progress.js';
import type { Job } from '../../domain/job.js';
import { vmStateFromLibvirt } from '../../domain/vm.js';
import { domainLookup, domainResume } from '../../adapters/libvirt/domain.js';
import { buildJobAbortArgs, buildJobInfoArgs, buildMigrateArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory, PeerNode } from './peer-nodes.js';
import { runPreflight, type MigrationDisk, type MigrationMode, type PreflightResult } from './preflight.js';

const PROGRESS_INTERVAL_MS = 1000;
const MIGRATE_TIMEOUT_MS = 6 * 3600_000;

interface Plan {
  vmName: string;
  uuid: string;
  peer: PeerNode;
  mode: MigrationMode;
  preflight: PreflightResult;
}

/** Live migration of a VM on this node to a peer, as a job that either moves it or leaves it where it was. */
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
    if (!plan.preflight.go) {
      const failed = plan.preflight.checks.filter((c) => !c.ok);
      throw new AppError('VM_STATE_CONFLICT', `Migration of ${plan.vmName} to ${plan.peer.name} refused: ${failed[0]!.message}`, {
        detail: failed.map((c) => `${c.id}: ${c.message}`).join('\n'),
      });
    }
    if (plan.mode === 'offline') throw badInput('mode', 'Offline migration is not available yet; start the VM and migrate it live.');
    const from = this.ctx.config.nodeName;
    return this.ctx.jobs.submit(
      { kind: 'migrate', node: from, vm: plan.vmName, user, message: `Migrating ${plan.vmName} to ${plan.peer.name}…`, params: { to: plan.peer.name, mode: plan.mode, checks: plan.preflight.checks } },
      (job) => this.migrate(plan, job),
    );
  }

  private async plan(rawName: unknown, body: Record<string, unknown>): Promise<Plan> {
    const vmName = requireVmName(rawName);
    const to = body.to;
    if (typeof to !== 'string' || to === '') throw badInput('to', 'Pick the destination node.');
    if (to === this.ctx.config.nodeName) throw badInput('to', `VM ${vmName} is already on node ${to}.`);
    const peer = this.peers.get(to);
    if (!peer) throw new AppError('NODE_NOT_FOUND', `Node ${to} is not a configured peer of ${this.ctx.config.nodeName}.`, { field: 'to' });
    const mode = requireChoice('mode', body.mode, ['live', 'offline'] as const, 'live');
    const vm = await this.inventory.get(vmName);
    const snap = await domainLookup(this.ctx.conn, vmName);
    if (!snap) throw new AppError('VM_NOT_FOUND', `VM ${vmName} does not exist on node ${this.ctx.config.nodeName}.`);
    const preflight = await runPreflight({ vm, description: snap.description, sourceNode: this.ctx.config.nodeName, peer, mode, jobs: this.jobsRepo, qemuImg: this.ctx.qemuImg });
    return { vmName, uuid: vm.uuid, peer, mode, preflight };
  }

  private async migrate(plan: Plan, job: JobContext): Promise<{ message: string; result: Record<string, unknown> }> {
    const { vmName: name, peer } = plan;
    const from = this.ctx.config.nodeName;
    const started = Date.now();
    const created: string[] = [];
    let step = 'disks';
    try {
      job.progress({ step, percent: 0 }, `Creating sparse disks for ${name} on ${peer.name}…`);
      for (const d of plan.preflight.disks) {
        await createRemoteDisk(peer, d);
        created.push(d.path);
        job.record({ createdOnDestination: [...created] });
      }

      step = 'copy';
      const args = buildMigrateArgs({ sourceUri: this.ctx.config.libvirtUri, vm: name, destUri: peer.libvirtUri, dataAddress: peer.config.dataAddress, mode: 'live' });
      job.onAbort(async () => {
        await this.ctx.run('virsh', buildJobAbortArgs(this.ctx.config.libvirtUri, name), { timeoutMs: 30_000, check: false });
      });
      const migrating = this.ctx.run('virsh', args, { timeoutMs: MIGRATE_TIMEOUT_MS, failureMessage: `Migration of ${name} to ${peer.name} failed while copying.` });
      let last: MigrationProgress | null = null;
      const settled = { done: false };
      void migrating.finally(() => (settled.done = true)).catch(() => undefined);
      while (!settled.done) {
        await Promise.race([migrating.catch(() => undefined), this.ctx.sleep(PROGRESS_INTERVAL_MS)]);
        if (settled.done) break;
        const p = await this.jobInfo(name);
        if (p) {
          last = p;
          job.progress({ step, ...p }, `Migrating ${name} to ${peer.name}: ${p.percent}%`);
        }
      }
      await migrating;

      step = 'verify';
      const destState = (await peer.virsh(['domstate', '--domain', name], { check: false })).stdout.trim();
      const stillHere = await domainLookup(this.ctx.conn, name);
      if (destState !== 'running' || stillHere) {
        throw new AppError('LIBVIRT_FAILED', `Migration of ${name} finished but could not be verified (on ${peer.name}: ${destState || 'absent'}; on ${from}: ${stillHere ? 'still defined' : 'gone'}).`);
      }
      const completed = parseDomJobInfoRaw((await peer.virsh(['domjobinfo', '--domain', name, '--completed', '--rawstats'], { check: false })).stdout);
      const destAllocated = await remoteAllocated(peer, plan.preflight.disks);

      step = 'cleanup';
      const removed: string[] = [];
      if (!this.ctx.config.keepSourceDisks) {
        for (const d of plan.preflight.disks) {
          await unlink(d.path).then(() => removed.push(d.path), (e) => this.ctx.log.warn('source disk not removed', { path: d.path, error: String(e) }));
        }
      }
      this.inventory.invalidate();
      const result = {
        from, to: peer.name, durationMs: Date.now() - started,
        downtimeMs: completed?.downtimeMs ?? null,
        bytesMoved: completed?.dataProcessedBytes ?? last?.dataProcessedBytes ?? null,
        sourceAllocatedBytes: plan.preflight.disks.reduce((a, d) => a + d.allocatedBytes, 0),
        destinationAllocatedBytes: destAllocated,
        sourceDisksRemoved: removed,
      };
      job.progress({ step: 'done', ...(last ?? {}), percent: 100 });
      const down = result.downtimeMs === null ? '' : `, ${result.downtimeMs} ms downtime`;
      return { message: `VM ${name} migrated to ${peer.name} in ${(result.durationMs / 1000).toFixed(1)} s${down}.`, result };
    } catch (e) {
      const outcome = await this.restore(plan, created);
      const why = job.aborted ? `Migration of ${name} to ${peer.name} was aborted.` : failureSentence(e, step, name, peer.name);
      throw new AppError('LIBVIRT_FAILED', `${why} ${outcome}`, { detail: describeError(e) + (isAppErrorWithDetail(e) ? `\n${e.detail}` : ''), cause: e });
    }
  }

  private async jobInfo(name: string): Promise<MigrationProgress | null> {
    try {
      const r = await this.ctx.run('virsh', buildJobInfoArgs(this.ctx.config.libvirtUri, name, false), { timeoutMs: 10_000, check: false });
      return r.exitCode === 0 ? parseDomJobInfoRaw(r.stdout) : null;
    } catch {
      return null;
    }
  }

  /**
   * After a failure: the VM must be running here, nothing of it left there. Destination
   * state is only removed while the source still has the VM — never the last copy.
   */
  private async restore(plan: Plan, created: string[]): Promise<string> {
    const { vmName: name, peer } = plan;
    const here = await domainLookup(this.ctx.conn, name).catch(() => null);
    if (!here) {
      return `VM ${name} is no longer on ${this.ctx.config.nodeName}; check node ${peer.name} before doing anything else.`;
    }
    if (vmStateFromLibvirt(here.stateCode) === 'paused') await domainResume(this.ctx.conn, name).catch(() => undefined);
    const notes: string[] = [];
    try {
      const there = await peer.virsh(['list', '--all', '--uuid'], { check: false });
      if (there.stdout.split('\n').some((l) => l.trim() === plan.uuid)) {
        await peer.virsh(['destroy', '--domain', plan.uuid], { check: false });
        await peer.virsh(['undefine', '--domain', plan.uuid, '--nvram'], { check: false });
      }
      for (const path of created) await peer.shell.exec('rm', ['-f', '--', path], { check: false });
    } catch (e) {
      notes.push(`Could not clean up node ${peer.name} (${describeError(e)}); remove ${created.join(', ') || 'nothing'} there by hand.`);
    }
    this.inventory.invalidate();
    return [`VM ${name} is still running on ${this.ctx.config.nodeName} with its disks intact.`, ...notes].join(' ');
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

function failureSentence(e: unknown, step: string, vm: string, to: string): string {
  const text = describeError(e) + ' ' + ((e as { detail?: string })?.detail ?? '');
  const where = { disks: 'while preparing disks', copy: 'while copying', verify: 'while verifying', cleanup: 'while cleaning up' }[step] ?? '';
  let hint = '';
  if (/Connection refused|No route to host|Connection timed out|Network is unreachable/i.test(text)) hint = ` The data connection to ${to} failed; check the network between the nodes.`;
  else if (/No space left/i.test(text)) hint = ` ${to} ran out of disk space.`;
  else if (/host key|known_hosts/i.test(text)) hint = ` ${to}'s SSH host key did not match.`;
  return `Migration of ${vm} to ${to} failed ${where}.${hint}`;
}

function isAppErrorWithDetail(e: unknown): e is AppError & { detail: string } {
  return e instanceof AppError && typeof e.detail === 'string';
}
