import { describe, expect, it } from 'vitest';
import { cpuFromPlan, ioFromPlan, statsPlan } from '../../src/domain/stats/stats-plan.js';
import { ioFromDomStats } from '../../src/domain/stats/io.js';
import { cpuFromDomStats } from '../../src/domain/stats/domstats-cpu.js';
import { TypedStats } from '../../src/domain/stats/typed-stats.js';

/** A real libvirt 9 layout (one VM, one disk, one tap; string parameters left out, as the addon does). */
const REAL = `cpu.time cpu.user cpu.system cpu.cache.monitor.count cpu.haltpoll.success.time cpu.haltpoll.fail.time balloon.current balloon.maximum balloon.rss vcpu.current vcpu.maximum vcpu.0.state vcpu.0.time vcpu.0.wait vcpu.0.delay net.count net.0.rx.bytes net.0.rx.pkts net.0.rx.errs net.0.rx.drop net.0.tx.bytes net.0.tx.pkts net.0.tx.errs net.0.tx.drop block.count block.0.backingIndex block.0.rd.reqs block.0.rd.bytes block.0.rd.times block.0.wr.reqs block.0.wr.bytes block.0.wr.times block.0.fl.reqs block.0.fl.times block.0.allocation block.0.capacity block.0.physical`.split(' ');

/** Both readings of the same parameters: by plan (the native path) and by name (the virsh path's functions). */
function both(names: string[], values: number[], offset = 0) {
  const padded = [...Array(offset).fill(123456), ...values];
  const plan = statsPlan(names);
  const typed = new TypedStats(new Map(names.map((n, i) => [n, i])), padded, offset);
  return {
    plan: { io: ioFromPlan(plan, padded, offset), cpu: cpuFromPlan(plan, padded, offset) },
    byName: { io: ioFromDomStats({ name: 'vm', values: typed }), cpu: cpuFromDomStats({ name: 'vm', values: typed }) },
  };
}

describe('statsPlan: reading libvirt typed parameters by index', () => {
  it('reads a real layout: CPU time, vCPUs, memory, RSS and each I/O counter', () => {
    const values = REAL.map((_, i) => 1000 + i);
    const r = both(REAL, values, 7);
    expect(r.plan).toEqual(r.byName);
    expect(r.plan.cpu).toEqual({ cpuNs: 1000, vcpus: 1009, memKiB: 1006, rssKiB: 1008 });
    expect(r.plan.io.diskWrBytes).toBe(1000 + REAL.indexOf('block.0.wr.bytes'));
    expect(r.plan.io.netOutPkts).toBe(1000 + REAL.indexOf('net.0.tx.pkts'));
  });

  it('sums several disks and interfaces, bounded by block.count and net.count as the by-name reading is', () => {
    const names = ['block.count', ...[0, 1, 2].flatMap((i) => [`block.${i}.rd.bytes`, `block.${i}.wr.bytes`, `block.${i}.rd.reqs`, `block.${i}.wr.reqs`]), 'net.count', ...[0, 1].flatMap((i) => [`net.${i}.rx.bytes`, `net.${i}.tx.bytes`, `net.${i}.rx.pkts`, `net.${i}.tx.pkts`])];
    for (const [blocks, nets] of [[3, 2], [2, 1], [0, 0], [NaN, 2], [5, 9]] as const) {
      const values = names.map((n, i) => (n === 'block.count' ? blocks : n === 'net.count' ? nets : 10 * (i + 1)));
      const r = both(names, values);
      expect(r.plan.io).toEqual(r.byName.io);
    }
    const all = both(names, names.map((n) => (n === 'block.count' ? 3 : n === 'net.count' ? 2 : 1)));
    expect(all.plan.io).toEqual({ diskRdBytes: 3, diskWrBytes: 3, diskRdOps: 3, diskWrOps: 3, netInBytes: 2, netOutBytes: 2, netInPkts: 2, netOutPkts: 2 });
  });

  it('skips negative and non-finite counters and gives no CPU reading without all three figures', () => {
    const names = ['cpu.time', 'vcpu.current', 'balloon.current', 'block.count', 'block.0.wr.bytes', 'block.1.wr.bytes'];
    for (const values of [[5, 1, 1024, 2, -1, 7], [5, 0, 1024, 2, Infinity, 7], [NaN, 2, 1024, 2, 3, 4], [1.5, 2, 1024, 2, 3, 4], [5, 2, 1024, 1, 3, 4]]) {
      const r = both(names, values);
      expect(r.plan).toEqual(r.byName);
    }
    expect(both(names, [5, 0, 1024, 2, 1, 1]).plan.cpu).toBeNull();
    expect(both(['state.state', 'state.reason'], [1, 0]).plan).toEqual({ io: expect.objectContaining({ diskRdBytes: 0, netOutBytes: 0 }), cpu: null });
  });

  it('ignores parameters it does not know, and device keys with unknown counters', () => {
    const names = ['block.count', 'block.0.rd.times', 'block.0.allocation', 'net.count', 'net.0.rx.errs', 'block.0.wr.bytes', 'cpu.user'];
    const r = both(names, [1, 99, 99, 1, 99, 5, 99]);
    expect(r.plan.io.diskWrBytes).toBe(5);
    expect(Object.values(r.plan.io).reduce((a, b) => a + b, 0)).toBe(5);
  });
});
