import type { DomStats } from './domstats.js';

/**
 * Cumulative I/O counters of one running VM, summed over its disks and interfaces.
 * Network directions are the VM's own: `netIn` is what the VM received (libvirt swaps the
 * tap device's host-side rx/tx for us, so the figure reads from the guest's side).
 */
export interface IoCounters {
  diskRdBytes: number;
  diskWrBytes: number;
  diskRdOps: number;
  diskWrOps: number;
  netInBytes: number;
  netOutBytes: number;
  netInPkts: number;
  netOutPkts: number;
}

/** Per-second rates over one tick, same fields: bytes/s, operations/s, packets/s. */
export type IoRates = { [K in keyof IoCounters]: number };

export const IO_FIELDS = ['diskRdBytes', 'diskWrBytes', 'diskRdOps', 'diskWrOps', 'netInBytes', 'netOutBytes', 'netInPkts', 'netOutPkts'] as const satisfies readonly (keyof IoCounters)[];

/** What each figure is, for the page's labels and the README. */
export const IO_LABELS: Record<keyof IoCounters, string> = {
  diskRdBytes: 'disk read, bytes/s (all disks, as QEMU counted them)',
  diskWrBytes: 'disk written, bytes/s (all disks, as QEMU counted them)',
  diskRdOps: 'disk read operations/s',
  diskWrOps: 'disk write operations/s',
  netInBytes: 'network in, bytes/s (received by the VM, all interfaces)',
  netOutBytes: 'network out, bytes/s (sent by the VM, all interfaces)',
  netInPkts: 'network in, packets/s',
  netOutPkts: 'network out, packets/s',
};

/** domstats keys, per device index N, that feed each counter. */
const BLOCK: [keyof IoCounters, string][] = [
  ['diskRdBytes', 'rd.bytes'],
  ['diskWrBytes', 'wr.bytes'],
  ['diskRdOps', 'rd.reqs'],
  ['diskWrOps', 'wr.reqs'],
];
const NET: [keyof IoCounters, string][] = [
  ['netInBytes', 'rx.bytes'],
  ['netOutBytes', 'tx.bytes'],
  ['netInPkts', 'rx.pkts'],
  ['netOutPkts', 'tx.pkts'],
];

/** The same, by device kind (stats-plan.ts reads them by index). */
export const IO_SOURCE_KEYS: Record<'block' | 'net', readonly [keyof IoCounters, string][]> = { block: BLOCK, net: NET };

export function zeroCounters(): IoCounters {
  return { diskRdBytes: 0, diskWrBytes: 0, diskRdOps: 0, diskWrOps: 0, netInBytes: 0, netOutBytes: 0, netInPkts: 0, netOutPkts: 0 };
}

/**
 * Sums `virsh domstats --block --interface --raw` counters of one domain. `block.count`
 * and `net.count` bound the device indexes; a device without a counter (a CD-ROM with no
 * medium, an interface libvirt cannot read) adds nothing. Backing-chain entries
 * (`--backing`) are not requested, so each disk is counted once.
 */
export function ioFromDomStats(d: DomStats): IoCounters {
  const out = zeroCounters();
  const add = (prefix: 'block' | 'net', keys: [keyof IoCounters, string][]) => {
    const count = Number(d.values.get(`${prefix}.count`) ?? 0);
    for (let i = 0; i < count; i++) {
      for (const [field, key] of keys) {
        const v = Number(d.values.get(`${prefix}.${i}.${key}`));
        if (Number.isFinite(v) && v >= 0) out[field] += v;
      }
    }
  };
  add('block', BLOCK);
  add('net', NET);
  return out;
}

/** Rates from two readings; a counter that went down (VM restarted, disk detached) gives null. */
export function ioRates(prev: IoCounters, cur: IoCounters, elapsedMs: number): IoRates | null {
  if (!(elapsedMs > 0)) return null;
  const out = zeroCounters();
  for (const f of IO_FIELDS) {
    const delta = cur[f] - prev[f];
    if (delta < 0) return null;
    out[f] = (delta * 1000) / elapsedMs;
  }
  return out;
}

/** Previous reading per VM run (uuid + libvirt id, like CpuDeltas), so each tick gives rates. */
export class IoDeltas {
  private prev = new Map<string, { c: IoCounters; atMs: number }>();

  next(key: string, c: IoCounters, atMs: number): IoRates | null {
    const p = this.prev.get(key);
    this.prev.set(key, { c, atMs });
    return p ? ioRates(p.c, c, atMs - p.atMs) : null;
  }

  retain(keys: Set<string>): void {
    for (const k of this.prev.keys()) if (!keys.has(k)) this.prev.delete(k);
  }
}
