import { performance } from 'node:perf_hooks';
import { parseDomStats } from '../src/domain/stats/domstats.js';
import { ioFromDomStats, type IoCounters } from '../src/domain/stats/io.js';
import type { VirshShell } from '../src/adapters/virsh/virsh-shell.js';

export interface IoReading {
  /** Keyed by domain name, as `virsh domstats` prints it. */
  byName: Map<string, IoCounters>;
  atMs: number;
}

export const IO_DOMSTATS_WORDS = ['domstats', '--raw', '--list-active', '--block', '--interface'] as const;

/**
 * Disk and network counters of every running VM in one command per tick, sent to a virsh
 * kept running (bench/stats.ts measured the options: this costs a small fraction of a
 * spawned virsh, and the binding has no block or interface statistics call). The block
 * counters are QEMU's own (query-blockstats through libvirt); the interface counters are
 * the host's tap device counters, which libvirt reads and turns to the guest's view.
 */
export class DomStatsIoSource {
  constructor(private readonly shell: VirshShell) {}

  async read(): Promise<IoReading> {
    const out = await this.shell.run(IO_DOMSTATS_WORDS);
    const atMs = performance.now();
    const byName = new Map<string, IoCounters>();
    for (const d of parseDomStats(out)) byName.set(d.name, ioFromDomStats(d));
    return { byName, atMs };
  }

  close(): void {
    this.shell.close();
  }
}
