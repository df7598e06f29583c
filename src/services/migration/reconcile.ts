import { AppError, describeError } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import { parseDomJobInfoRaw } from '../../domain/migration-progress.js';
import { buildJobInfoArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { JobContext, JobOutcome, JobRunner } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmMigrator } from './migrate-vm.js';
import type { PeerDirectory } from './peer-nodes.js';
import { hasActiveJob } from './live-copy.js';
import { createdFilesFrom } from './remote-files.js';
import type { EjectedMedia } from './settle.js';
import { localSide } from './vm-sides.js';
import { remoteFileFact } from './plan-facts.js';

const FOLLOW_INTERVAL_MS = 1000;
const FOLLOW_LIMIT_MS = 6 * 3600_000;
const FOLLOW_MAX_FAILURES = 10;

/**
 * The one start-up reconciler for migrations: settles those a previous process left
 * "running", from both nodes' libvirt: still migrating → followed to the end; on the
 * destination only → ok; still here and not running there → failed, VM resumed,
 * destination leftovers removed; running there and still defined here → needs
 * attention, nothing touched.
 */
export class MigrationReconciler {
  constructor(
    private readonly ctx: NodeContext,
    private readonly peers: PeerDirectory,
    private readonly repo: JobsRepository,
    private readonly jobs: JobRunner,
    private readonly migrator: VmMigrator,
  ) {}

  /** Adopts every orphaned migration job of this node; returns their ids. */
  reconcile(): number[] {
    const orphans = this.repo.running().filter((j) => j.kind === 'migrate' && j.node === this.ctx.config.nodeName);
    for (const job of orphans) this.jobs.adopt(job, (jc) => this.settle(job, jc));
    return orphans.map((j) => j.id);
  }

  private async settle(job: Job, jc: JobContext): Promise<JobOutcome> {
    const name = job.vm ?? '';
    const uuid = typeof job.params.uuid === 'string' ? job.params.uuid : '';
    const to = typeof job.params.to === 'string' ? job.params.to : '';
    const mode = job.params.mode === 'offline' ? 'offline' : 'live';
    const peer = this.peers.get(to);
    if (!name || !uuid || !peer) {
      throw new AppError('LIBVIRT_FAILED', `Migration of ${name} was interrupted when kvm-ferry restarted before it had been checked; check node ${this.ctx.config.nodeName}${to ? ` and node ${to}` : ''} by hand.`);
    }
    await this.follow(name, uuid, to, jc);
    const created = createdFilesFrom(job.result?.createdOnDestination);
    const ejected = Array.isArray(job.result?.ejectedMedia) ? (job.result.ejectedMedia as EjectedMedia[]) : [];
    const settled = await this.migrator.settler.settle({ vmName: name, uuid, peer, mode, pausedForCopy: job.result?.pausedForCopy === true }, created, ejected, jc);
    if (settled.kind === 'moved') {
      // libvirt finished the move on its own: remove here only what the plan copied and
      // the destination verifiably holds.
      const planned = Array.isArray(job.params.removeAfter) ? job.params.removeAfter.filter((d): d is string => typeof d === 'string') : [];
      const present = await Promise.all(planned.map(async (p) => (await remoteFileFact(peer, p).catch(() => ({ kind: 'missing' as const }))).kind === 'file'));
      const removed = await this.migrator.removeSourcePaths(planned.filter((_, i) => present[i]));
      jc.progress({ step: 'done', percent: 100 });
      return {
        message: `VM ${name} migrated to ${to}; the migration finished while kvm-ferry was restarting.`,
        result: { from: this.ctx.config.nodeName, to, mode, reconciled: true, sourceRemoved: removed, sourceKept: planned.filter((p) => !removed.includes(p)) },
      };
    }
    if (settled.kind === 'attention') throw new AppError('LIBVIRT_FAILED', `Needs attention: migration of ${name} to ${to} was interrupted when kvm-ferry restarted. ${settled.note}`);
    throw new AppError('LIBVIRT_FAILED', `Migration of ${name} to ${to} was interrupted when kvm-ferry restarted. ${settled.note}`);
  }

  /**
   * Waits while libvirt here still runs the move. A failed query is not an answer: it is
   * retried, and after several in a row the settling below asks both nodes itself.
   */
  private async follow(name: string, uuid: string, to: string, jc: JobContext): Promise<void> {
    const started = Date.now();
    let failures = 0;
    while (Date.now() - started < FOLLOW_LIMIT_MS && failures < FOLLOW_MAX_FAILURES) {
      try {
        if (!(await this.isHere(uuid)) || !(await hasActiveJob(this.ctx, uuid))) return;
        failures = 0;
        const r = await this.ctx.run('virsh', buildJobInfoArgs(this.ctx.config.libvirtUri, uuid, false), { timeoutMs: 10_000, check: false });
        const p = parseDomJobInfoRaw(r.stdout);
        if (p) jc.progress({ step: 'copy', ...p }, `Migrating ${name} to ${to}: ${p.percent}% (followed after a restart)`);
      } catch (e) {
        failures++;
        this.ctx.log.warn('could not follow an adopted migration; retrying', { vm: name, error: describeError(e) });
      }
      await this.ctx.sleep(FOLLOW_INTERVAL_MS);
    }
  }

  private async isHere(uuid: string): Promise<boolean> {
    return (await localSide(this.ctx, uuid)) !== null;
  }
}
