import { unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Job } from '../domain/job.js';
import { isActive, vmStateFromLibvirt } from '../domain/vm.js';
import { domainList, type DomainSnapshot } from '../adapters/libvirt/domain.js';
import { describeError } from '../errors.js';
import { isUuid } from '../domain/uuid.js';
import type { CommandResult } from '../adapters/process/run-command.js';
import type { NodeContext } from './node-context.js';
import type { OrphanVerdict } from './job-runner.js';

type Ctx = Pick<NodeContext, 'jobs' | 'conn' | 'config' | 'log' | 'run'>;

/** What reconciliation needs of a peer: its libvirt, over SSH. */
export interface PeerLookup {
  get(name: string): { virsh(args: readonly string[], opts?: { check?: boolean; timeoutMs?: number }): Promise<CommandResult> } | null;
}

const RESTARTED = 'kvm-ferry restarted while this job ran';

/**
 * After a crash, jobs the old process left "running" are settled by what libvirt
 * really shows now, not assumed failed: a create whose VM is defined did its work;
 * one whose VM is missing is failed and its half-made disk removed, so a retry with
 * the same name is not refused for a stray file.
 */
export async function reconcileOrphanJobs(ctx: Ctx, peers?: PeerLookup): Promise<Job[]> {
  let domains: DomainSnapshot[] | null = null;
  try {
    domains = await domainList(ctx.conn);
  } catch (e) {
    ctx.log.warn('cannot reach libvirt to reconcile interrupted jobs; marking them failed', { error: describeError(e) });
  }
  return ctx.jobs.reconcileOrphans(async (job) => (domains ? decide(job, domains, ctx, peers) : unknownOutcome(job)));
}

function unknownOutcome(job: Job): OrphanVerdict {
  return { state: 'failed', message: `Interrupted: ${RESTARTED} (${job.kind}); check the VM's state and retry.` };
}

async function decide(job: Job, domains: DomainSnapshot[], ctx: Ctx, peers?: PeerLookup): Promise<OrphanVerdict> {
  const vm = job.vm;
  if (!vm) return unknownOutcome(job);
  const dom = findDomain(job, vm, domains);
  const active = dom !== null && isActive(vmStateFromLibvirt(dom.stateCode));
  const settled = (ok: boolean, what: string, result?: Record<string, unknown>): OrphanVerdict => ({
    state: ok ? 'ok' : 'failed',
    message: `${what} (checked with libvirt after ${RESTARTED}).`,
    ...(result ? { result } : {}),
  });
  switch (job.kind) {
    case 'create': {
      if (dom) return settled(true, `VM ${vm} exists: it was created`);
      const removed = await removeHalfMadeDisk(job, domains, ctx);
      return settled(false, `VM ${vm} was not created${removed ? `; its half-made disk ${removed} was removed` : ''}`, removed ? { removedDisk: removed } : undefined);
    }
    case 'start':
      return settled(active, active ? `VM ${vm} is running` : `VM ${vm} did not start`);
    case 'shutdown':
    case 'poweroff':
      return settled(dom !== null && !active, dom === null ? `VM ${vm} no longer exists` : active ? `VM ${vm} is still running` : `VM ${vm} is off`);
    case 'delete':
      return settled(dom === null, dom === null ? `VM ${vm} is deleted; check its disks` : `VM ${vm} still exists`);
    // Migrations are settled by MigrationReconciler, which adopts them before this runs.
    default:
      return unknownOutcome(job);
  }
}

/**
 * The VM the job acted on: by the UUID it recorded (power jobs in their params, a create
 * once it defined the VM), so a VM deleted and re-created under the same name is not
 * mistaken for it; by name only for jobs that recorded none.
 */
function findDomain(job: Job, vm: string, domains: DomainSnapshot[]): DomainSnapshot | null {
  const recorded = job.result?.uuid ?? job.params.uuid;
  if (isUuid(recorded)) return domains.find((d) => d.description.uuid.toLowerCase() === recorded) ?? null;
  return domains.find((d) => d.description.name === vm) ?? null;
}

/**
 * Only a disk this job planned to make (recorded in its params or result), inside the
 * image directory, and used by no defined VM. An imported image is never touched.
 */
async function removeHalfMadeDisk(job: Job, domains: DomainSnapshot[], ctx: Ctx): Promise<string | null> {
  const recorded = job.result?.createdDisk ?? job.params.newDiskPath;
  if (typeof recorded !== 'string') return null;
  const path = resolve(recorded);
  if (dirname(path) !== resolve(ctx.config.imageDir)) return null;
  if (domains.some((d) => d.description.disks.some((k) => k.path === path))) return null;
  try {
    await unlink(path);
    return path;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') ctx.log.warn('could not remove the disk of an interrupted create', { jobId: job.id, path, error: describeError(e) });
    return null;
  }
}
