import { performance } from 'node:perf_hooks';
import { parseDomStats } from '../src/domain/stats/domstats.js';
import { ioFromDomStats, type IoCounters } from '../src/domain/stats/io.js';
import { cpuFromDomStats, type DomStatsCpu } from '../src/domain/stats/domstats-cpu.js';
import type { VirshShell } from '../src/adapters/virsh/virsh-shell.js';

export interface IoReading {
  /** Keyed by domain name, as `virsh domstats` prints it. */
  byName: Map<string, IoCounters>;
  /**
   * CPU time, vCPU count and current memory where libvirt printed them (a real libvirtd
   * does; the test driver prints none): the sampler then needs no binding call for that VM.
   */
  cpuByName: Map<string, DomStatsCpu>;
  atMs: number;
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
export class DomStatsIoSource {
  constructor(private readonly shell: VirshShell) {}

  async read(): Promise<IoReading> {
    const out = await this.shell.run(IO_DOMSTATS_WORDS);
    const atMs = performance.now();
    const byName = new Map<string, IoCounters>();
    const cpuByName = new Map<string, DomStatsCpu>();
    for (const d of parseDomStats(out)) {
      byName.set(d.name, ioFromDomStats(d));
      const c = cpuFromDomStats(d);
      if (c) cpuByName.set(d.name, c);
    }
    return { byName, cpuByName, atMs };
  }

  close(): void {
    this.shell.close();
  }
}
