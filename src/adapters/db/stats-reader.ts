import type { Db } from './database.js';
import type { RamKind, StatsRange } from '../../domain/stats/sample.js';
import { IO_FIELDS, type IoCounters } from '../../domain/stats/io.js';
import { IO_COLUMNS } from './stats-writer.js';

export type IoField = keyof IoCounters;

/** Columns ready for uPlot: t in Unix seconds, cpu in %, ram in MiB; *Max are the bucket maxima. */
export interface StatsSeries {
  resolutionSec: number;
  t: number[];
  cpu: (number | null)[];
  cpuMax: (number | null)[];
  ram: number[];
  ramMax: number[];
  /** Disk and network averages per point (bytes/s, operations/s, packets/s); null where none was sampled. */
  io: Record<IoField, (number | null)[]>;
}

export function emptyIo(): Record<IoField, (number | null)[]> {
  return Object.fromEntries(IO_FIELDS.map((f) => [f, []])) as unknown as Record<IoField, (number | null)[]>;
}

export interface VmStatsInfo {
  name: string;
  uuid: string | null;
  ramKind: RamKind;
  lastSeen: number;
}

export interface Sparkline {
  t: number[];
  cpu: (number | null)[];
  ram: number[];
  /** Disk read + write, bytes/s. */
  disk: (number | null)[];
  /** Network in + out, bytes/s. */
  net: (number | null)[];
}

/** Rows come back as arrays (.raw()): no object per row on the hot path; I/O columns follow in IO_FIELDS order. */
type Row = [t: number, cpu: number | null, cpuMax: number | null, ram: number, ramMax: number, ...io: (number | null)[]];

const RAW_IO = IO_COLUMNS.map(([c]) => c).join(', ');
const ROLL_IO = IO_COLUMNS.map(([, c]) => c).join(', ');
const TEN_IO = IO_COLUMNS.map(([, c]) => `sum(${c} * io_n) * 1.0 / nullif(sum(io_n), 0)`).join(', ');

/**
 * Which table answers which range: raw 5-s rows for 1 h (720 points), minutes for 24 h
 * (1440), minutes folded to 10 min for 7 d (1008), hours for 30 d (720). Every query walks
 * one primary key or the name_date index for one VM, so its cost does not grow with the
 * number of VMs or the length of the history.
 */
const PLAN: Record<StatsRange, { seconds: number; resolutionSec: number }> = {
  '1h': { seconds: 3600, resolutionSec: 0 },
  '24h': { seconds: 86400, resolutionSec: 60 },
  '7d': { seconds: 7 * 86400, resolutionSec: 600 },
  '30d': { seconds: 30 * 86400, resolutionSec: 3600 },
};

/** The manager's read side of stats.sqlite. */
export class StatsReader {
  private readonly info;
  private readonly raw;
  private readonly minute;
  private readonly tenMinute;
  private readonly hour;
  private readonly spark;
  private readonly lastTickQ;

  constructor(db: Db, private readonly intervalSec: number) {
    this.info = db.prepare('SELECT id, name, uuid, ram_kind AS ramKind, last_seen AS lastSeen FROM stat_vm WHERE name = ?');
    this.raw = db.prepare(`SELECT DateTime AS t, Cpu AS cpu, Cpu AS cpuMax, Ram AS ram, Ram AS ramMax, ${RAW_IO} FROM Data WHERE VMname = ? AND DateTime >= ? ORDER BY DateTime`).raw();
    this.minute = db.prepare(`SELECT t * 60 AS t, cpu_avg / 10.0 AS cpu, cpu_max / 10.0 AS cpuMax, ram_avg AS ram, ram_max AS ramMax, ${ROLL_IO}
      FROM stat_minute WHERE vm = ? AND t >= ? ORDER BY t`).raw();
    this.tenMinute = db.prepare(`SELECT (t / 10) * 600 AS t, sum(cpu_avg * n) / 10.0 / nullif(sum(CASE WHEN cpu_avg IS NULL THEN 0 ELSE n END), 0) AS cpu,
      max(cpu_max) / 10.0 AS cpuMax, round(sum(ram_avg * n) * 1.0 / sum(n)) AS ram, max(ram_max) AS ramMax, ${TEN_IO}
      FROM stat_minute WHERE vm = ? AND t >= ? GROUP BY t / 10 ORDER BY t`).raw();
    this.hour = db.prepare(`SELECT t * 3600 AS t, cpu_avg / 10.0 AS cpu, cpu_max / 10.0 AS cpuMax, ram_avg AS ram, ram_max AS ramMax, ${ROLL_IO}
      FROM stat_hour WHERE vm = ? AND t >= ? ORDER BY t`).raw();
    this.lastTickQ = db.prepare("SELECT value FROM stat_state WHERE key = 'last_tick'").pluck();
    // Ended minutes from the rollup (one row each), then the raw samples of the minute still open:
    // ~20 rows per VM instead of 120, so a 100-VM page stays cheap.
    this.spark = db.prepare(`SELECT t * 60, cpu_avg / 10.0, ram_avg, disk_rd + disk_wr, net_in + net_out FROM stat_minute
        WHERE vm = (SELECT id FROM stat_vm WHERE name = @name) AND t >= @from / 60
          AND t < (SELECT value FROM stat_state WHERE key = 'minute_next')
      UNION ALL
      SELECT DateTime, Cpu, Ram, DiskRd + DiskWr, NetIn + NetOut FROM Data WHERE VMname = @name
        AND DateTime >= max(@from, coalesce((SELECT value FROM stat_state WHERE key = 'minute_next') * 60, 0))
      ORDER BY 1`).raw();
  }

  /** Unix seconds of the daemon's last tick, null if it never ran. */
  lastTick(): number | null {
    return (this.lastTickQ.get() as number | undefined) ?? null;
  }

  vm(name: string): VmStatsInfo | null {
    const r = this.info.get(name) as (VmStatsInfo & { id: number }) | undefined;
    return r ? { name: r.name, uuid: r.uuid, ramKind: r.ramKind, lastSeen: r.lastSeen } : null;
  }

  series(name: string, range: StatsRange, nowSec: number): StatsSeries {
    const plan = PLAN[range];
    const from = nowSec - plan.seconds;
    const vm = this.info.get(name) as { id: number } | undefined;
    let rows: Row[] = [];
    if (range === '1h') rows = this.raw.all(name, from) as Row[];
    else if (vm && range === '24h') rows = this.minute.all(vm.id, Math.floor(from / 60)) as Row[];
    else if (vm && range === '7d') rows = this.tenMinute.all(vm.id, Math.floor(from / 600) * 10) as Row[];
    else if (vm) rows = this.hour.all(vm.id, Math.floor(from / 3600)) as Row[];
    const out: StatsSeries = { resolutionSec: plan.resolutionSec || this.intervalSec, t: [], cpu: [], cpuMax: [], ram: [], ramMax: [], io: emptyIo() };
    const ioCols = IO_FIELDS.map((f) => out.io[f]);
    for (const row of rows) {
      const [t, cpu, cpuMax, ram, ramMax] = row;
      out.t.push(t);
      out.cpu.push(cpu);
      out.cpuMax.push(cpuMax);
      out.ram.push(ram);
      out.ramMax.push(ramMax);
      for (let i = 0; i < ioCols.length; i++) ioCols[i]!.push(row[5 + i] ?? null);
    }
    return out;
  }

  /** Last `seconds` of one VM for the small chart on its row: minute averages, then the open minute's samples. */
  sparkline(name: string, nowSec: number, seconds = 600): Sparkline {
    const rows = this.spark.all({ name, from: nowSec - seconds }) as [number, number | null, number, number | null, number | null][];
    const out: Sparkline = { t: [], cpu: [], ram: [], disk: [], net: [] };
    for (const [t, cpu, ram, disk, net] of rows) {
      out.t.push(t);
      out.cpu.push(cpu);
      out.ram.push(ram);
      out.disk.push(disk);
      out.net.push(net);
    }
    return out;
  }
}
