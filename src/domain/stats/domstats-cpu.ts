import type { DomStats } from './domstats.js';

/** What domainGetInfo would answer for a running VM, from its `domstats --cpu-total --vcpu --balloon` block. */
export interface DomStatsCpu {
  /** Cumulative CPU time, ns (cpu.time). */
  cpuNs: number;
  /** vCPUs the VM runs now (vcpu.current). */
  vcpus: number;
  /** Memory the VM has now, KiB (balloon.current, = domainGetInfo's memory). */
  memKiB: number;
  /** QEMU's resident memory, KiB (balloon.rss: libvirt reads it from /proc), null when not printed. */
  rssKiB: number | null;
}

const whole = (v: string | number | undefined): number | null =>
  typeof v === 'number' ? (Number.isSafeInteger(v) && v >= 0 ? v : null) : v !== undefined && /^\d+$/.test(v) ? Number(v) : null;

/** null unless all three figures are there (the test driver prints none; the caller then asks the binding). */
export function cpuFromDomStats(d: DomStats): DomStatsCpu | null {
  const cpuNs = whole(d.values.get('cpu.time'));
  const vcpus = whole(d.values.get('vcpu.current'));
  const memKiB = whole(d.values.get('balloon.current'));
  if (cpuNs === null || vcpus === null || vcpus < 1 || memKiB === null) return null;
  return { cpuNs, vcpus, memKiB, rssKiB: whole(d.values.get('balloon.rss')) };
}
