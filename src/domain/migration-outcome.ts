/**
 * Where a VM is after a migration was interrupted (virsh killed, manager restarted,
 * timeout), decided from what both nodes' libvirt say — never from what the job hoped.
 * Once the destination runs the VM, the source must never be resumed and the
 * destination never destroyed: that is the only copy that is current.
 */

/** `virsh domstate --reason` of the VM (by UUID) on one node; null when it is not defined there. */
export interface SideState {
  /** libvirt's words: running, paused, shut off, … */
  state: string;
  /** e.g. migrated, migrating, post-copy, user… */
  reason: string | null;
}

export type InterruptedVerdict =
  /** On the destination only (running live, or defined offline): the move happened. */
  | { kind: 'moved'; resumeDestination?: boolean }
  /** Still on the source and not running on the destination: undo as for any failure. */
  | { kind: 'not-moved' }
  /** Both hold it with the destination running (or neither holds it): a human decides. */
  | { kind: 'attention'; why: string };

export function parseDomstateReason(out: string): SideState | null {
  const line = out.trim().split('\n')[0]?.trim() ?? '';
  if (!line) return null;
  const m = /^(.*?)\s*\((.*)\)$/.exec(line);
  return m ? { state: m[1]!.trim(), reason: m[2]!.trim() } : { state: line, reason: null };
}

export function describeSide(node: string, s: SideState | null): string {
  return s ? `${s.state}${s.reason ? ` (${s.reason})` : ''} on ${node}` : `not defined on ${node}`;
}

/** The destination could not be asked (unreachable): its state is unknown, not absent. */
export const UNKNOWN = 'unknown' as const;

export function settleInterrupted(mode: 'live' | 'offline', source: SideState | null, dest: SideState | null | typeof UNKNOWN, names: { vm: string; from: string; to: string }, pausedForCopy = false): InterruptedVerdict {
  if (dest === UNKNOWN) {
    // A source that runs was never switched over (libvirt resumes it after a failed
    // copy, and kills it after a successful one); anything else might have been. A VM
    // kvm-ferry paused for its whole copy is the current copy while it is still here:
    // libvirt leaves the destination's paused, and only kvm-ferry resumes it, after success.
    if (source && (source.state === 'running' || mode === 'offline' || (pausedForCopy && source.state === 'paused'))) return { kind: 'not-moved' };
    return { kind: 'attention', why: `VM ${names.vm} is ${describeSide(names.from, source)} and node ${names.to} cannot be reached to see whether it runs there; do not start it on ${names.from} until you have checked ${names.to}.` };
  }
  const both = `${describeSide(names.from, source)}; ${describeSide(names.to, dest)}`;
  if (mode === 'offline') {
    if (!source && dest) return { kind: 'moved' };
    if (source) return { kind: 'not-moved' };
    return { kind: 'attention', why: `VM ${names.vm} is on neither node (${both}); look for it with virsh list --all on both before doing anything else.` };
  }
  const destRunning = dest?.state === 'running';
  if (destRunning && !source) return { kind: 'moved' };
  // kvm-ferry paused it for its copy (an emulated guest) and libvirt finished the move without
  // resuming it: the destination's copy is the only one, and it is resumed there.
  if (pausedForCopy && !source && dest?.state === 'paused') return { kind: 'moved', resumeDestination: true };
  if (destRunning) {
    // The destination resumed it: it is the current copy. The source's copy (paused or,
    // after libvirt's confirm step, shut off) is stale and must not be resumed.
    return { kind: 'attention', why: `VM ${names.vm} runs on ${names.to} and is still defined on ${names.from} (${both}). The copy on ${names.to} is the current one: do not start the one on ${names.from}; remove it there (virsh undefine) once you have checked ${names.to}.` };
  }
  if (source) return { kind: 'not-moved' };
  return { kind: 'attention', why: `VM ${names.vm} is not running on either node (${both}); check both before doing anything else.` };
}
