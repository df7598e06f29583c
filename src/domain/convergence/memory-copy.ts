/**
 * How a live move copies the VM's memory: while the VM runs (pre-copy, the policies steer
 * it), or with the VM paused for the whole copy.
 *
 * Why "paused" exists: QEMU before 9.0 loses memory writes of an emulated (TCG) guest
 * during a live memory copy. Its fast path for syncing the dirty bitmap clears dirty bits
 * without resetting the TCG TLB, so later stores through that TLB are not tracked and those
 * pages never reach the destination (QEMU commit "physmem: Fix migration dirty bitmap
 * coherency with TCG memory access", in 9.0). On the lab a busy TCG guest moved that way
 * arrived "running" and oopsed seconds later. KVM guests are not affected: KVM tracks their
 * writes itself. A guest paused before the copy starts writes nothing, so nothing is lost.
 */
export const EMULATED_MEMORY_COPY = ['auto', 'paused', 'live'] as const;
export type EmulatedMemoryCopy = (typeof EMULATED_MEMORY_COPY)[number];
export type MemoryCopyMode = 'live' | 'paused';

/** The first QEMU release with the TCG dirty-tracking fix. */
export const TCG_DIRTY_TRACKING_FIXED_IN: readonly [number, number, number] = [9, 0, 0];

export interface MemoryCopyInput {
  vm: string;
  /** libvirt's domain type: "kvm", or "qemu" for an emulated (TCG) guest. */
  domainType: string;
  /** What `<emulator> --version` printed, or null when it could not be read. */
  qemuVersionText: string | null;
  /** convergence.emulatedMemoryCopy */
  setting: EmulatedMemoryCopy;
}

export interface MemoryCopyDecision {
  mode: MemoryCopyMode;
  emulated: boolean;
  /** "7.2.22", or null when unknown (or irrelevant: a KVM guest). */
  qemuVersion: string | null;
  /** One sentence for the pre-flight list; null when nothing is worth saying (a KVM guest). */
  reason: string | null;
}

/** "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)" → [7, 2, 22]. */
export function parseQemuVersion(text: string): [number, number, number] | null {
  const m = /\bversion\s+(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?/i.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function older(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  return false;
}

export function decideMemoryCopy(input: MemoryCopyInput): MemoryCopyDecision {
  const emulated = input.domainType === 'qemu';
  if (!emulated) return { mode: 'live', emulated, qemuVersion: null, reason: null };
  const v = input.qemuVersionText === null ? null : parseQemuVersion(input.qemuVersionText);
  const qemuVersion = v ? v.join('.') : null;
  const paused = `so it is paused for the whole copy (disks and memory): nothing is lost, but it does not run until it resumes on the destination`;
  if (input.setting === 'paused') {
    return { mode: 'paused', emulated, qemuVersion, reason: `VM ${input.vm} is emulated (TCG) and convergence.emulatedMemoryCopy is "paused", ${paused}.` };
  }
  const affected = v === null || older(v, TCG_DIRTY_TRACKING_FIXED_IN);
  if (input.setting === 'live') {
    return {
      mode: 'live', emulated, qemuVersion,
      reason: affected
        ? `VM ${input.vm} is emulated (TCG) and its memory is copied while it runs because convergence.emulatedMemoryCopy is "live", although QEMU ${qemuVersion ?? '(version unknown)'} can lose memory writes of an emulated guest during a live copy (fixed in QEMU 9.0).`
        : `VM ${input.vm} is emulated (TCG); QEMU ${qemuVersion} copies its memory safely while it runs.`,
    };
  }
  if (!affected) return { mode: 'live', emulated, qemuVersion, reason: `VM ${input.vm} is emulated (TCG); QEMU ${qemuVersion} copies its memory safely while it runs.` };
  const why = v === null
    ? `the version of this node's QEMU could not be read, and QEMU before 9.0 can lose memory writes of an emulated guest during a live copy`
    : `QEMU ${qemuVersion} on this node can lose memory writes of an emulated guest during a live copy (fixed in QEMU 9.0)`;
  return { mode: 'paused', emulated, qemuVersion, reason: `VM ${input.vm} is emulated (TCG) and ${why}, ${paused}.` };
}

export interface PausedForecastInput {
  ramBytes: number;
  touchedRamBytes: number | null;
  diskBytes: number;
  /** min(link, cap), bytes/s. */
  bps: number;
  budgetSec: number;
}

/** QEMU's setup, the destination's start and the move's own steps, on top of the bytes (lab: 3.4–3.7 s). */
const PAUSED_SETUP_SEC = 3;

/** One pass with nothing re-dirtied: the whole move is the pause. */
export function pausedForecast(i: PausedForecastInput): { totalSec: number; pauseSec: number; converges: boolean } {
  const bytes = i.diskBytes + Math.min(i.ramBytes, i.touchedRamBytes ?? i.ramBytes);
  const totalSec = Math.round((bytes / Math.max(1, i.bps) + PAUSED_SETUP_SEC) * 10) / 10;
  return { totalSec, pauseSec: totalSec, converges: totalSec <= i.budgetSec };
}
