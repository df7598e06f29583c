import { AppError, describeError } from '../../errors.js';
import { removeIfOurs, type CreatedFile } from './remote-files.js';
import { peerSide } from './vm-sides.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { Logger } from '../../log.js';
import type { PeerDirectory, PeerNode } from './peer-nodes.js';

/** What a failed migration may have left on the destination. */
export interface Leftovers {
  peer: string;
  vm: string;
  uuid: string;
  /** Files this job created there (with their identity); only these are ever removed. */
  created: CreatedFile[];
}

/**
 * Removes a failed migration's domain and files from the destination. Callers only do
 * this while the source still holds the VM: never the last copy. A domain that runs
 * there is never destroyed (it may be the current copy after a switch-over), and a
 * file is removed only if it is still the one this job created.
 */
export async function removeLeftovers(peer: PeerNode, l: Leftovers): Promise<{ left: string[] }> {
  const there = await peerSide(peer, l.uuid);
  if (there?.state === 'running') {
    throw new AppError('VM_STATE_CONFLICT', `VM ${l.vm} runs on node ${peer.name}; kvm-ferry does not destroy a running VM while cleaning up.`);
  }
  if (there) {
    await peer.virsh(['destroy', '--domain', l.uuid], { check: false });
    // No --nvram: the NVRAM path there is only removed if this job created it (below).
    await peer.virsh(['undefine', '--domain', l.uuid, '--keep-nvram'], { check: false });
  }
  const { left } = await removeIfOurs(peer, l.created);
  return { left };
}

/** What resuming a VM paused for a failed copy came to: busy = libvirt still holds it, try again. */
export type ResumeOutcome = 'resumed' | 'running' | 'gone' | 'busy';

const RESUME_NOTES: Record<Exclude<ResumeOutcome, 'busy'>, string> = {
  resumed: 'kvm-ferry resumed the VM once libvirt had wound its cancelled copy down',
  running: 'the VM was already running again',
  gone: 'the VM is no longer on this node, or no longer paused by kvm-ferry',
};

/**
 * Retries the cleanup of failed migrations whose destination was unreachable at the
 * time (a cut link): once the peer answers again, what the job created there goes.
 */
export class LeftoverJanitor {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly repo: JobsRepository,
    private readonly peers: PeerDirectory,
    private readonly sourceHas: (uuid: string) => Promise<boolean>,
    private readonly log: Logger,
    /** Runs `work` holding the VM's job lock (null: the VM is busy, try later). */
    private readonly withVmLock: <T>(vm: string, what: string, work: () => Promise<T>) => Promise<T | null> = async (_vm, _what, work) => work(),
    /** Resumes a VM kvm-ferry paused for a copy that failed, once libvirt no longer holds it. */
    private readonly resumeWhenFree: (uuid: string) => Promise<ResumeOutcome> = async () => 'gone',
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.runOnce(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass; returns how many jobs were settled. */
  async runOnce(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let settled = 0;
    try {
      for (const job of this.repo.withPendingResume()) {
        const uuid = typeof job.params.uuid === 'string' ? job.params.uuid : '';
        const outcome = uuid ? await this.resumeWhenFree(uuid).catch(() => 'busy' as const) : 'gone';
        if (outcome === 'busy') continue;
        this.repo.mergeResult(job.id, { resumePending: false, resumeNote: RESUME_NOTES[outcome], ...(outcome === 'resumed' ? { resumedAt: new Date().toISOString() } : {}) });
        if (outcome === 'resumed') this.log.info('resumed a VM paused for a failed copy', { jobId: job.id, vm: job.vm });
        settled++;
      }
      for (const job of this.repo.withPendingCleanup()) {
        const l = job.result?.leftovers as Leftovers | undefined;
        if (l && !Array.isArray(l.created)) l.created = [];
        const peer = l ? this.peers.get(l.peer) : null;
        if (!l || !peer) {
          this.repo.mergeResult(job.id, { cleanupPending: false, cleanupNote: 'the destination is no longer a configured peer; nothing was removed' });
          continue;
        }
        if (!(await this.sourceHas(l.uuid))) {
          this.repo.mergeResult(job.id, { cleanupPending: false, cleanupNote: `VM ${l.vm} is no longer on this node; nothing was removed on ${l.peer}` });
          continue;
        }
        try {
          // Cheap first: only take the VM's lock (a job row) once the peer answers.
          await peer.shell.probe();
          const done = await this.withVmLock(l.vm, `Removing what migration #${job.id} left on ${l.peer}…`, async () => {
            if (!(await this.sourceHas(l.uuid))) return 'gone' as const;
            return removeLeftovers(peer, l);
          });
          if (done === null) continue;
          if (done === 'gone') {
            this.repo.mergeResult(job.id, { cleanupPending: false, cleanupNote: `VM ${l.vm} is no longer on this node; nothing was removed on ${l.peer}` });
            continue;
          }
          this.repo.mergeResult(job.id, { cleanupPending: false, cleanedUpAt: new Date().toISOString(), ...(done.left.length ? { leftAlone: done.left } : {}) });
          this.log.info('removed what a failed migration left on a peer', { jobId: job.id, peer: l.peer, files: l.created.map((f) => f.path) });
          settled++;
        } catch (e) {
          this.log.debug('peer still unreachable for cleanup', { jobId: job.id, error: describeError(e) });
        }
      }
    } finally {
      this.running = false;
    }
    return settled;
  }
}
