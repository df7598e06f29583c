/**
 * What RAM figure a sample carries, so the page can label it honestly:
 * - `rss`: resident memory of the VM's QEMU process on the host (what the VM costs the host);
 * - `balloon-used`: memory the guest itself reports as used (balloon driver statistics);
 * - `assigned`: memory libvirt gave the VM (balloon.current / domainGetInfo), not what it uses;
 * - `virt-top`: virt-top's %MEM of host memory, converted to MiB.
 */
import type { IoRates } from './io.js';

export type RamKind = 'rss' | 'balloon-used' | 'assigned' | 'virt-top';

export const RAM_KIND_LABELS: Record<RamKind, string> = {
  rss: 'RAM used on the host (QEMU process RSS)',
  'balloon-used': 'RAM used inside the guest (balloon statistics)',
  assigned: 'RAM assigned to the VM (not a measure of use)',
  'virt-top': 'RAM share reported by virt-top',
};

/** One VM at one instant, as a sampler reports it. */
export interface VmSample {
  name: string;
  uuid: string | null;
  /** Unix seconds. */
  ts: number;
  /** 0–100, of all the VM's vCPUs together; null on the first sight of a VM (no delta yet). */
  cpuPct: number | null;
  ramMiB: number;
  ramKind: RamKind;
  /** Disk and network rates since the previous tick; null on first sight or when the source has none. */
  io?: IoRates | null;
}

export const STATS_RANGES = ['1h', '24h', '7d', '30d'] as const;
export type StatsRange = (typeof STATS_RANGES)[number];

export function isStatsRange(s: unknown): s is StatsRange {
  return typeof s === 'string' && (STATS_RANGES as readonly string[]).includes(s);
}
