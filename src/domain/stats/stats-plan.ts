import { IO_SOURCE_KEYS, zeroCounters, type IoCounters } from './io.js';
import type { DomStatsCpu } from './domstats-cpu.js';

/**
 * Where the figures the sampler needs sit in one layout of libvirt's typed statistics
 * parameters (the names of one VM's parameters, in order). A VM's layout is the same tick
 * after tick, so this is worked out once per layout and a tick reads a dozen numbers by
 * index: no name lookups or key strings per VM per tick (bench/stats.ts measured them as a
 * large part of a tick). Gives exactly what ioFromDomStats and cpuFromDomStats give for the
 * same parameters (test/unit/stats-plan.test.ts checks that on the same inputs).
 */
export interface StatsPlan {
  cpuTime: number;
  vcpus: number;
  memory: number;
  rss: number;
  blockCount: number;
  netCount: number;
  /** Per counter: [value index, device index, 0 block | 1 net] triples, flattened. */
  io: { field: keyof IoCounters; at: Int32Array }[];
}

const DEVICE_KEY = /^(block|net)\.(\d+)\.(.+)$/;

export function statsPlan(names: readonly string[]): StatsPlan {
  const index = new Map(names.map((n, i) => [n, i] as const));
  const at = (k: string) => index.get(k) ?? -1;
  const io = new Map<keyof IoCounters, number[]>();
  names.forEach((n, i) => {
    const m = DEVICE_KEY.exec(n);
    if (!m) return;
    const kind = m[1] as 'block' | 'net';
    const field = IO_SOURCE_KEYS[kind].find(([, key]) => key === m[3])?.[0];
    if (!field) return;
    const list = io.get(field) ?? [];
    list.push(i, Number(m[2]), kind === 'block' ? 0 : 1);
    io.set(field, list);
  });
  return {
    cpuTime: at('cpu.time'),
    vcpus: at('vcpu.current'),
    memory: at('balloon.current'),
    rss: at('balloon.rss'),
    blockCount: at('block.count'),
    netCount: at('net.count'),
    io: [...io].map(([field, list]) => ({ field, at: Int32Array.from(list) })),
  };
}

const wholeAt = (values: ArrayLike<number>, offset: number, i: number): number | null => {
  if (i < 0) return null;
  const v = values[offset + i]!;
  return Number.isSafeInteger(v) && v >= 0 ? v : null;
};

/** The I/O counters (devices bounded by block.count / net.count, as ioFromDomStats does). */
export function ioFromPlan(plan: StatsPlan, values: ArrayLike<number>, offset: number): IoCounters {
  const out = zeroCounters();
  const count = (i: number) => {
    const c = i < 0 ? 0 : Number(values[offset + i]);
    return Number.isFinite(c) ? c : 0;
  };
  const counts = [count(plan.blockCount), count(plan.netCount)];
  for (const { field, at } of plan.io) {
    for (let k = 0; k < at.length; k += 3) {
      if (at[k + 1]! >= counts[at[k + 2]!]!) continue;
      const v = values[offset + at[k]!]!;
      if (Number.isFinite(v) && v >= 0) out[field] += v;
    }
  }
  return out;
}

/** CPU time, vCPUs, memory and RSS, null unless the first three are there (as cpuFromDomStats). */
export function cpuFromPlan(plan: StatsPlan, values: ArrayLike<number>, offset: number): DomStatsCpu | null {
  const cpuNs = wholeAt(values, offset, plan.cpuTime);
  const vcpus = wholeAt(values, offset, plan.vcpus);
  const memKiB = wholeAt(values, offset, plan.memory);
  if (cpuNs === null || vcpus === null || vcpus < 1 || memKiB === null) return null;
  return { cpuNs, vcpus, memKiB, rssKiB: wholeAt(values, offset, plan.rss) };
}
