import type { ConvergencePolicy } from './types.js';

/**
 * XBZRLE, QEMU's delta compression of memory pages: from the second pass on, a page the
 * guest rewrote is sent as its difference from the copy sent before (kept in a cache on the
 * source), not as 4 KiB. A guest that changes a little of many pages — a database updating
 * rows, counters, a kernel's bookkeeping — then re-sends a fraction of what it dirtied, and a
 * copy that could not converge can. Proxmox turns it on for every migration. It costs the
 * source the cache's memory and some CPU for pages that are re-sent; the first pass (every
 * page once) goes as before, so an idle VM pays nothing.
 *
 * Here: on for `safe` and `fast-finish` (before post-copy QEMU sends pre-copy pages this way
 * too); never for `strict` (the plain copy, only a budget), for a VM paused for its whole
 * copy (one pass, nothing is re-sent), or with multifd (QEMU does not combine them).
 */
export type XbzrleSetting = 'auto' | number;

export interface XbzrleInput {
  policy: ConvergencePolicy;
  /** The VM's memory is copied while it is paused (one pass). */
  paused: boolean;
  multifd: boolean;
  ramBytes: number;
  /** convergence.xbzrleCacheMiB: 'auto', 0 (off) or a cache size in MiB. */
  setting: XbzrleSetting;
  /** This migration's request: on/off, or null to follow the config. */
  requested: boolean | null;
}

export interface XbzrleDecision {
  /** Cache size in bytes, or null when XBZRLE is not used. */
  cacheBytes: number | null;
  /** One sentence for the pre-flight list. */
  reason: string;
}

const MiB = 1024 * 1024;
/** The automatic cache: half the VM's RAM (a rewritten working set must fit with room to spare), 64 MiB … 1 GiB. */
export const XBZRLE_AUTO_MIN_MIB = 64;
export const XBZRLE_AUTO_MAX_MIB = 1024;

/** The largest power of two not above n (QEMU rounds its cache down to one anyway). */
function powerOfTwoFloor(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}

export function autoXbzrleCacheMiB(ramBytes: number): number {
  return Math.min(XBZRLE_AUTO_MAX_MIB, Math.max(XBZRLE_AUTO_MIN_MIB, powerOfTwoFloor(ramBytes / MiB / 2)));
}

export function decideXbzrle(input: XbzrleInput): XbzrleDecision {
  const off = (why: string): XbzrleDecision => ({ cacheBytes: null, reason: `Delta compression (XBZRLE) is not used: ${why}.` });
  if (input.requested === false) return off('it was turned off for this migration');
  if (input.setting === 0 && input.requested === null) return off('convergence.xbzrleCacheMiB is 0');
  if (input.policy === 'strict') return off('the strict policy copies memory plainly');
  if (input.paused) return off('the VM is paused for its copy, so no page is sent twice');
  if (input.multifd) return off('multifd is on (convergence.multifdConnections), and QEMU does not combine the two');
  // Asked for on a node whose config has it off: the automatic cache.
  const auto = input.setting === 'auto' || input.setting === 0;
  const mib = input.setting === 'auto' || input.setting === 0 ? autoXbzrleCacheMiB(input.ramBytes) : input.setting;
  return {
    cacheBytes: mib * MiB,
    reason: `Delta compression (XBZRLE) is on: a page the VM rewrites during the copy is re-sent as its changes, with a ${mib} MiB cache on this node${auto ? ' (half the VM\u2019s memory, 64 MiB to 1 GiB)' : ''}.`,
  };
}
