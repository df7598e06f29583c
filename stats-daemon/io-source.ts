import { performance } from 'node:perf_hooks';
import { parseDomStats } from '../src/domain/stats/domstats.js';
import { ioFromDomStats, type IoCounters } from '../src/domain/stats/io.js';
import { cpuFromDomStats, type DomStatsCpu } from '../src/domain/stats/domstats-cpu.js';
import type { VirshShell } from '../src/adapters/virsh/virsh-shell.js';
import type { NativeDomStats } from '../src/adapters/libvirt/native-domstats.js';
import type { DomStats } from '../src/domain/stats/domstats.js';
import { cpuFromPlan, ioFromPlan, statsPlan, type StatsPlan } from '../src/domain/stats/stats-plan.js';

export interface IoReading {
  /** Keyed by domain name, as `virsh domstats` prints it. */
  byName: Map<string, IoCounters>;
  /**
   * CPU time, vCPU count and current memory where libvirt printed them (a real libvirtd
   * does; the test driver prints none): the sampler then needs no binding call for that VM.
   */
  cpuByName: Map<string, DomStatsCpu>;
  /** Every running VM, when the source lists them itself (the native call does): the sampler then needs no list call. */
  domains?: { id: number; name: string; uuid: string }[];
  atMs: number;
}

/** Where a tick's disk, network (and, on a real libvirtd, CPU and memory) figures come from. */
export interface IoSource {
  /** 'native': virConnectGetAllDomainStats through the addon; 'virsh': a kept-running virsh. */
  readonly kind: 'native' | 'virsh';
  read(): Promise<IoReading>;
  close(): void;
}

function readingOf(records: DomStats[], atMs: number): IoReading {
  const byName = new Map<string, IoCounters>();
  const cpuByName = new Map<string, DomStatsCpu>();
  for (const d of records) {
    byName.set(d.name, ioFromDomStats(d));
    const c = cpuFromDomStats(d);
    if (c) cpuByName.set(d.name, c);
  }
  return { byName, cpuByName, atMs };
}

/**
 * The default where the addon is built: one virConnectGetAllDomainStats per tick, the same
 * groups as the virsh command below, as numbers (bench/stats.ts: a fraction of the kept virsh's
 * cost, which formats ~40 lines per VM that are then parsed).
 */
export class NativeIoSource implements IoSource {
  readonly kind = 'native' as const;
  constructor(private readonly stats: NativeDomStats) {}

  /** Plans by layout (the adapter keeps one layout object per distinct set of parameter names). */
  private readonly plans = new WeakMap<object, StatsPlan>();

  async read(): Promise<IoReading> {
    const records = await this.stats.read();
    const atMs = performance.now();
    const byName = new Map<string, IoCounters>();
    const cpuByName = new Map<string, DomStatsCpu>();
    const domains: NonNullable<IoReading['domains']> = [];
    for (const { name, uuid, id, values: v } of records) {
      let plan = this.plans.get(v.layout);
      if (!plan) {
        plan = statsPlan([...v.layout.keys()]);
        this.plans.set(v.layout, plan);
      }
      byName.set(name, ioFromPlan(plan, v.values, v.offset));
      const c = cpuFromPlan(plan, v.values, v.offset);
      if (c) cpuByName.set(name, c);
      domains.push({ id, name, uuid });
    }
    return { byName, cpuByName, atMs, domains };
  }

  close(): void {
    this.stats.close();
  }
}

export const IO_DOMSTATS_WORDS = ['domstats', '--raw', '--list-active', '--cpu-total', '--vcpu', '--balloon', '--block', '--interface'] as const;

/**
 * Every counter of every running VM in one command per tick, sent to a virsh kept running
 * (bench/stats.ts measured the options: the binding's per-VM domainGetInfo calls cost more
 * than this whole command, and the binding has no block or interface statistics call). The
 * block counters are QEMU's own (query-blockstats through libvirt); the interface counters
 * are the host's tap device counters, which libvirt reads and turns to the guest's view;
 * cpu.time is the VM's cgroup CPU time, the figure domainGetInfo answers too.
 */
export class DomStatsIoSource implements IoSource {
  readonly kind = 'virsh' as const;
  constructor(private readonly shell: VirshShell) {}

  /** pid of the kept virsh (benchmarks read its CPU time). */
  get shellPid(): number | null {
    return this.shell.pid;
  }

  async read(): Promise<IoReading> {
    const out = await this.shell.run(IO_DOMSTATS_WORDS);
    return readingOf(parseDomStats(out), performance.now());
  }

  close(): void {
    this.shell.close();
  }
}
