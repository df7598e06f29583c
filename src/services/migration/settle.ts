import { describeError } from '../../errors.js';
import { describeSide, settleInterrupted, UNKNOWN, type SideState } from '../../domain/migration-outcome.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerNode } from './peer-nodes.js';
import { removeLeftovers, type Leftovers } from './leftovers.js';
import type { CreatedFile } from './remote-files.js';
import { localSide, peerSideOrUnknown } from './vm-sides.js';
import { reinsertMedia } from './media.js';
import { hasActiveJob } from './live-copy.js';

/** How long a failed move waits for libvirt to let go of the VM it paused before leaving it to the janitor. */
const HELD_WAIT_MS = 10_000;

export interface EjectedMedia {
  target: string;
  path: string;
  running: boolean;
}

export interface SettleTarget {
  vmName: string;
  uuid: string;
  peer: PeerNode;
  mode: 'live' | 'offline';
  /** kvm-ferry paused the VM for its whole copy (live-copy.ts): a paused destination copy is then the moved VM. */
  pausedForCopy?: boolean;
}

export interface Settled {
  kind: 'moved' | 'not-moved' | 'attention';
  /** Sentences for the job's message: where the VM is and what was (not) done. */
  note: string;
}

/**
 * After a failed or interrupted move: reads both nodes and acts only on what they say.
 * Destination running → it is the current copy: nothing is resumed or destroyed. Still
 * here and not running there → the VM is resumed here, its media re-inserted, and what
 * the job made on the destination removed (or left for the janitor when it is unreachable).
 */
export class MoveSettler {
  constructor(private readonly ctx: NodeContext, private readonly inventory: VmInventory) {}

  async settle(t: SettleTarget, created: CreatedFile[], ejected: EjectedMedia[], job: Pick<JobContext, 'record'>): Promise<Settled> {
    const from = this.ctx.config.nodeName;
    const names = { vm: t.vmName, from, to: t.peer.name };
    let source: SideState | null;
    try {
      source = await localSide(this.ctx, t.uuid);
    } catch (e) {
      job.record({ needsAttention: true });
      return { kind: 'attention', note: `libvirt on ${from} could not be asked where VM ${t.vmName} is (${describeError(e)}); nothing was resumed or removed — check both nodes.` };
    }
    let dest = await peerSideOrUnknown(t.peer, t.uuid, this.ctx.sleep);
    const verdict = settleInterrupted(t.mode, source, dest, names, t.pausedForCopy === true);
    this.inventory.invalidate();
    if (verdict.kind === 'moved' && verdict.resumeDestination) {
      const r = await t.peer.virsh(['resume', '--domain', t.uuid], { check: false, timeoutMs: 30_000 }).catch((e: unknown) => ({ exitCode: -1, stderr: describeError(e), stdout: '' }));
      job.record({ resumedOnDestination: r.exitCode === 0 });
      if (r.exitCode !== 0) {
        job.record({ needsAttention: true });
        return { kind: 'attention', note: `VM ${t.vmName} arrived on ${t.peer.name} paused (it was paused for its copy) and could not be resumed there (${r.stderr.trim()}); resume it there (virsh resume). Nothing was removed.` };
      }
      dest = await peerSideOrUnknown(t.peer, t.uuid, this.ctx.sleep);
    }
    const sides = { source: source ? describeSide(from, source) : `not defined on ${from}`, destination: dest === UNKNOWN ? `unknown (${t.peer.name} unreachable)` : describeSide(t.peer.name, dest) };
    if (verdict.kind === 'moved') {
      job.record({ settledAs: 'moved', sides });
      return { kind: 'moved', note: `it is ${sides.destination}. Its files on ${from} were kept; remove them once you have checked ${t.peer.name}.` };
    }
    if (verdict.kind === 'attention') {
      job.record({ needsAttention: true, sides });
      return { kind: 'attention', note: `${verdict.why} Nothing was resumed, destroyed or deleted.` };
    }
    return { kind: 'not-moved', note: await this.restore(t, source!, created, ejected, job) };
  }

  /** True while libvirt still runs a job on the VM after `maxMs` (checked every second). */
  private async heldAfter(uuid: string, maxMs: number): Promise<boolean> {
    const until = Date.now() + maxMs;
    for (;;) {
      if (!(await hasActiveJob(this.ctx, uuid).catch(() => false))) return false;
      if (Date.now() >= until) return true;
      await this.ctx.sleep(1000);
    }
  }

  private async restore(t: SettleTarget, source: SideState, created: CreatedFile[], ejected: EjectedMedia[], job: Pick<JobContext, 'record'>): Promise<string> {
    const from = this.ctx.config.nodeName;
    // While libvirt still holds a cancelled copy's job, a resume would only wait 30 s for its lock.
    // An abort winds down within seconds; only a cut link keeps it longer (then the janitor resumes).
    const stillHeld = t.pausedForCopy === true && source.state === 'paused' && (await this.heldAfter(t.uuid, HELD_WAIT_MS));
    if (source.state === 'paused' && !stillHeld) {
      await this.ctx.run('virsh', ['-c', this.ctx.config.libvirtUri, 'resume', '--domain', t.uuid], { check: false, timeoutMs: 30_000 });
    }
    const now = (await localSide(this.ctx, t.uuid).catch(() => source)) ?? source;
    const running = now.state === 'running';
    const mediaProblems = ejected.length ? await reinsertMedia(this.ctx, t.uuid, ejected, running) : [];
    const media = ejected.length ? (mediaProblems.length ? ` ${mediaProblems.join('; ')}.` : ' Its ejected media were put back.') : '';
    // libvirt keeps a cancelled copy's job until the destination answers (a cut link): the VM
    // kvm-ferry paused cannot be resumed before that. The janitor resumes it then.
    const held = !running && now.state === 'paused' && t.pausedForCopy === true;
    if (held) job.record({ resumePending: true });
    const where = held
      ? `VM ${t.vmName} is paused on ${from} with its disks intact until libvirt there winds down the cancelled copy; kvm-ferry resumes it then.${media}`
      : `VM ${t.vmName} is still ${running ? 'running' : now.state} on ${from} with its disks intact.${media}`;
    const leftovers: Leftovers = { peer: t.peer.name, vm: t.vmName, uuid: t.uuid, created };
    try {
      const { left } = await removeLeftovers(t.peer, leftovers);
      job.record({ leftoversRemoved: true, ...(left.length ? { leftAlone: left } : {}) });
      return left.length ? `${where} Left alone on ${t.peer.name} (no longer the files this job made): ${left.join(', ')}.` : where;
    } catch (e) {
      job.record({ cleanupPending: true, leftovers });
      this.ctx.log.warn('could not clean up the destination yet', { peer: t.peer.name, error: describeError(e) });
      const what = created.length ? ` (${created.map((c) => c.path).join(', ')})` : '';
      return `${where} Node ${t.peer.name} cannot be reached to remove what the migration left there${what}; kvm-ferry retries until it can.`;
    }
  }
}
