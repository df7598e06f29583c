import type { StatsReader, StatsSeries } from '../adapters/db/stats-reader.js';
import { isStatsRange, RAM_KIND_LABELS, STATS_RANGES, type RamKind, type StatsRange } from '../domain/stats/sample.js';
import { sparkPath, type SparkPath } from '../domain/stats/sparkline.js';
import { requireVmName } from '../domain/names.js';
import { badInput, AppError } from '../errors.js';
import type { Vm } from '../domain/vm.js';

export interface VmHistory {
  node: string;
  vm: string;
  uuid: string | null;
  range: StatsRange;
  ramKind: RamKind | null;
  ramLabel: string;
  /** Seconds since the daemon's last tick; null if it never ran — the page says so. */
  daemonAgeSec: number | null;
  points: StatsSeries;
}

export interface RowSpark {
  cpu: SparkPath;
  ram: SparkPath;
  /** Disk read + write, bytes/s; scaled to its own maximum (the label carries the number). */
  disk: SparkPath;
  /** Network in + out, bytes/s. */
  net: SparkPath;
}

export interface NodeTotals {
  vmsSampled: number;
  /** Sum over running VMs of cpu% × vCPUs / 100: how many host CPUs the VMs keep busy. */
  busyCpus: number;
  ramMiB: number;
  daemonAgeSec: number | null;
}

export const SPARK_SECONDS = 600;
export const SPARK_W = 120;
export const SPARK_H = 24;

/**
 * Read side of the statistics for the page and the API. History lives on the node that
 * recorded it (stats.sqlite, keyed by VM name): after a migration the old node keeps the
 * VM's earlier history and the new node records from its arrival; a page fetches each
 * node's part through /api/nodes/:node/vms/:vm/stats.
 */
export class VmStatsService {
  constructor(private readonly reader: StatsReader, private readonly nodeName: string, private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000)) {}

  parseRange(raw: unknown): StatsRange {
    if (raw === undefined) return '1h';
    if (!isStatsRange(raw)) throw badInput('range', `range must be one of ${STATS_RANGES.join(', ')}.`);
    return raw;
  }

  /** `exists` asks libvirt whether the VM is here now; history of a VM that left is still served. */
  async history(vmName: unknown, rangeRaw: unknown, exists: (vm: string) => Promise<boolean>): Promise<VmHistory> {
    const vm = requireVmName(vmName, 'vm');
    const range = this.parseRange(rangeRaw);
    const info = this.reader.vm(vm);
    if (!info && !(await exists(vm))) throw new AppError('VM_NOT_FOUND', `VM ${vm} does not exist on this node and has no statistics here.`);
    const now = this.nowSec();
    return {
      node: this.nodeName,
      vm,
      uuid: info?.uuid ?? null,
      range,
      ramKind: info?.ramKind ?? null,
      ramLabel: info ? RAM_KIND_LABELS[info.ramKind] : 'RAM',
      daemonAgeSec: this.daemonAge(now),
      points: this.reader.series(vm, range, now),
    };
  }

  rowSparks(vms: Vm[]): Map<string, RowSpark> {
    const now = this.nowSec();
    const out = new Map<string, RowSpark>();
    for (const vm of vms) {
      if (vm.state !== 'running') continue;
      const s = this.reader.sparkline(vm.name, now, SPARK_SECONDS);
      if (s.t.length === 0) continue;
      out.set(vm.name, {
        cpu: sparkPath(s.t, s.cpu, now - SPARK_SECONDS, now, SPARK_W, SPARK_H, 100),
        ram: sparkPath(s.t, s.ram, now - SPARK_SECONDS, now, SPARK_W, SPARK_H, vm.memoryMiB > 0 ? Math.max(vm.memoryMiB, ...s.ram) : undefined),
        disk: sparkPath(s.t, s.disk, now - SPARK_SECONDS, now, SPARK_W, SPARK_H),
        net: sparkPath(s.t, s.net, now - SPARK_SECONDS, now, SPARK_W, SPARK_H),
      });
    }
    return out;
  }

  totals(vms: Vm[], sparks: Map<string, RowSpark>): NodeTotals {
    let busyCpus = 0;
    let ramMiB = 0;
    let vmsSampled = 0;
    for (const vm of vms) {
      const s = sparks.get(vm.name);
      if (!s) continue;
      vmsSampled++;
      busyCpus += ((s.cpu.last ?? 0) * vm.vcpus) / 100;
      ramMiB += s.ram.last ?? 0;
    }
    return { vmsSampled, busyCpus: Math.round(busyCpus * 100) / 100, ramMiB: Math.round(ramMiB), daemonAgeSec: this.daemonAge(this.nowSec()) };
  }

  private daemonAge(now: number): number | null {
    const t = this.reader.lastTick();
    return t === null ? null : Math.max(0, now - t);
  }
}
