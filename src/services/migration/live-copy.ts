import { AppError } from '../../errors.js';
import { parseDomJobInfoRaw, type MigrationProgress } from '../../domain/migration-progress.js';
import { buildJobAbortArgs, buildJobInfoArgs, buildMigrateArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';

const PROGRESS_INTERVAL_MS = 1000;
const MIGRATE_TIMEOUT_MS = 6 * 3600_000;
/** After an abort virsh still says goodbye to the destination; over a dead link that can hang. */
const EXIT_AFTER_ABORT_MS = 45_000;
const SETUP_GRACE_MS = 90_000;

/**
 * `virsh migrate --live --copy-storage-all` with progress from domjobinfo about once a
 * second. A copy that moves no data for `migrationStallTimeoutSec` is aborted, so a
 * cut link fails the job instead of hanging it.
 */
export async function runLiveCopy(ctx: NodeContext, target: { name: string; uuid: string }, peer: PeerNode, job: JobContext, step: () => string, copyTargets: readonly string[]): Promise<MigrationProgress | null> {
  const uri = ctx.config.libvirtUri;
  const { name: vm, uuid } = target;
  const args = buildMigrateArgs({ sourceUri: uri, uuid, destUri: peer.libvirtUri, dataAddress: peer.config.dataAddress, mode: 'live', copyTargets, tls: ctx.config.dataTransport === 'tls' });
  const killer = new AbortController();
  let stalledFor: number | null = null;
  const abortCopy = async () => {
    await ctx.run('virsh', buildJobAbortArgs(uri, uuid), { timeoutMs: 30_000, check: false });
    setTimeout(() => killer.abort(), EXIT_AFTER_ABORT_MS).unref();
  };
  job.onAbort(abortCopy);

  const migrating = ctx.run('virsh', args, { timeoutMs: MIGRATE_TIMEOUT_MS, signal: killer.signal, failureMessage: `Migration of ${vm} to ${peer.name} failed while copying.` });
  const settled = { done: false };
  void migrating.finally(() => (settled.done = true)).catch(() => undefined);

  const stallMs = ctx.config.migrationStallTimeoutSec * 1000;
  let last: MigrationProgress | null = null;
  let lastMovedAt = Date.now();
  let lastBytes = -1;
  while (!settled.done) {
    await Promise.race([migrating.catch(() => undefined), ctx.sleep(PROGRESS_INTERVAL_MS)]);
    if (settled.done) break;
    const p = await jobInfo(ctx, uuid);
    if (p) {
      last = p;
      job.progress({ step: step(), ...p }, `Migrating ${vm} to ${peer.name}: ${p.percent}%`);
      if (p.dataProcessedBytes !== lastBytes) {
        lastBytes = p.dataProcessedBytes;
        lastMovedAt = Date.now();
      }
    }
    // Before the first byte moves, libvirt is still connecting and starting the destination
    // QEMU (seconds on a busy host): that phase gets a longer grace than a stalled copy.
    const limit = lastBytes > 0 ? stallMs : Math.max(SETUP_GRACE_MS, 3 * stallMs);
    if (stalledFor === null && !job.aborted && Date.now() - lastMovedAt > limit) {
      stalledFor = Date.now() - lastMovedAt;
      ctx.log.warn('migration stalled; aborting it', { vm, peer: peer.name, stalledMs: stalledFor });
      await abortCopy();
    }
  }
  try {
    await migrating;
  } catch (e) {
    if (stalledFor !== null) {
      throw new AppError('LIBVIRT_FAILED', `no data reached ${peer.name} for ${Math.round(stalledFor / 1000)} s, so it was stopped; check the network between the nodes.`, { cause: e, detail: (e as AppError).detail ?? String(e) });
    }
    throw e;
  }
  return last;
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
