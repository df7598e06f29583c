import { AppError } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import { parseDomJobInfoRaw } from '../../domain/migration-progress.js';
import { domainLookup } from '../../adapters/libvirt/domain.js';
import { buildJobInfoArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { JobContext, JobOutcome, JobRunner } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmMigrator } from './migrate-vm.js';
import type { PeerDirectory } from './peer-nodes.js';
import { hasActiveJob } from './live-copy.js';

const FOLLOW_INTERVAL_MS = 1000;
const FOLLOW_LIMIT_MS = 6 * 3600_000;

/**
 * On start-up, settles migrations a previous process left "running", from libvirt's
 * real state: still migrating → followed to the end; VM now on the destination → ok;
 * VM still here → failed, VM resumed, destination leftovers removed.
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
    const peer = this.peers.get(to);
    if (!name || !uuid || !peer) {
      throw new AppError('LIBVIRT_FAILED', `Migration of ${name} was interrupted when kvm-ferry restarted; check node ${this.ctx.config.nodeName} and node ${to} by hand.`);
    }
    const started = Date.now();
    while ((await this.isHere(name, uuid)) && (await hasActiveJob(this.ctx, name))) {
      const r = await this.ctx.run('virsh', buildJobInfoArgs(this.ctx.config.libvirtUri, name, false), { timeoutMs: 10_000, check: false });
      const p = parseDomJobInfoRaw(r.stdout);
      if (p) jc.progress({ step: 'copy', ...p }, `Migrating ${name} to ${to}: ${p.percent}% (followed after a restart)`);
      if (Date.now() - started > FOLLOW_LIMIT_MS) break;
      await this.ctx.sleep(FOLLOW_INTERVAL_MS);
    }

    if (!(await this.isHere(name, uuid))) {
      const there = await peer.virsh(['list', '--all', '--uuid'], { timeoutMs: 15_000 });
      if (!there.stdout.split('\n').some((l) => l.trim() === uuid)) {
        throw new AppError('LIBVIRT_FAILED', `VM ${name} is on neither ${this.ctx.config.nodeName} nor ${to} after kvm-ferry restarted during its migration; check both nodes before doing anything else.`);
      }
      const disks = Array.isArray(job.params.disks) ? job.params.disks.filter((d): d is string => typeof d === 'string') : [];
      const removed = await this.migrator.removeSourceDisks(disks);
      jc.progress({ step: 'done', percent: 100 });
      return {
        message: `VM ${name} migrated to ${to}; the migration finished while kvm-ferry was restarting.`,
        result: { from: this.ctx.config.nodeName, to, reconciled: true, sourceDisksRemoved: removed },
      };
    }
    const created = Array.isArray(job.result?.createdOnDestination) ? (job.result.createdOnDestination as string[]) : [];
    const outcome = await this.migrator.restore({ vmName: name, uuid, peer }, created, jc);
    throw new AppError('LIBVIRT_FAILED', `Migration of ${name} to ${to} was interrupted when kvm-ferry restarted. ${outcome}`);
  }

  private async isHere(name: string, uuid: string): Promise<boolean> {
    const d = await domainLookup(this.ctx.conn, name);
    return d !== null && d.description.uuid === uuid;
  }
}
