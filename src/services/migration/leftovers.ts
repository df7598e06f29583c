import { describeError } from '../../errors.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { Logger } from '../../log.js';
import type { PeerDirectory, PeerNode } from './peer-nodes.js';

/** What a failed migration may have left on the destination. */
export interface Leftovers {
  peer: string;
  vm: string;
  uuid: string;
  /** Disk files this job created there; only these are ever removed. */
  paths: string[];
}

/**
 * Removes a failed migration's domain and disk files from the destination. Callers
 * only do this while the source still holds the VM: never the last copy.
 */
export async function removeLeftovers(peer: PeerNode, l: Leftovers): Promise<void> {
  const listed = await peer.virsh(['list', '--all', '--uuid'], { timeoutMs: 15_000, failureMessage: `Could not list the VMs on node ${peer.name}.` });
  if (listed.stdout.split('\n').some((line) => line.trim() === l.uuid)) {
    await peer.virsh(['destroy', '--domain', l.uuid], { check: false });
    await peer.virsh(['undefine', '--domain', l.uuid, '--nvram'], { check: false });
  }
  if (l.paths.length) {
    await peer.shell.exec('rm', ['-f', '--', ...l.paths], { timeoutMs: 30_000, failureMessage: `Could not remove ${l.paths.join(', ')} on node ${peer.name}.` });
  }
}

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
      for (const job of this.repo.withPendingCleanup()) {
        const l = job.result?.leftovers as Leftovers | undefined;
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
          await removeLeftovers(peer, l);
          this.repo.mergeResult(job.id, { cleanupPending: false, cleanedUpAt: new Date().toISOString() });
          this.log.info('removed what a failed migration left on a peer', { jobId: job.id, peer: l.peer, paths: l.paths });
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
