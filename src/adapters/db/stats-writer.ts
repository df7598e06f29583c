import type { Db } from './database.js';
import type { VmSample } from '../../domain/stats/sample.js';
import { IO_FIELDS } from '../../domain/stats/io.js';

/** Raw column ↔ rollup column, in IO_FIELDS order; bytes round to integers, operations and packets to 0.1. */
export const IO_COLUMNS = [
  ['DiskRd', 'disk_rd', 0], ['DiskWr', 'disk_wr', 0], ['DiskRdOps', 'disk_rd_ops', 1], ['DiskWrOps', 'disk_wr_ops', 1],
  ['NetIn', 'net_in', 0], ['NetOut', 'net_out', 0], ['NetInPkts', 'net_in_pkts', 1], ['NetOutPkts', 'net_out_pkts', 1],
] as const;

const RAW_IO = IO_COLUMNS.map(([c]) => c).join(', ');
const ROLL_IO = IO_COLUMNS.map(([, c]) => c).join(', ');
const MINUTE_IO = IO_COLUMNS.map(([raw, , d]) => `round(avg(${raw}), ${d})`).join(', ');
const HOUR_IO = IO_COLUMNS.map(([, c, d]) => `round(sum(${c} * io_n) * 1.0 / nullif(sum(io_n), 0), ${d})`).join(', ');

export interface Retention {
  rawRetentionHours: number;
  minuteRetentionDays: number;
  hourRetentionDays: number;
}

export interface MaintenanceReport {
  minutesRolled: number;
  hoursRolled: number;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * The daemon's side of stats.sqlite: one transaction per tick, then rollups of every
 * minute and hour that has ended, computed from what is on disk, so after a crash or
 * restart the catch-up covers the gap exactly and nothing is double-counted.
 */
export class StatsWriter {
  private readonly upsertVm;
  private readonly insertRow;
  private readonly vms;
  private readonly getState;
  private readonly setState;
  private readonly rollMinute;
  private readonly rollHour;
  private readonly dropRaw;
  private readonly dropMinute;
  private readonly dropHour;
  private readonly dropVms;

  constructor(private readonly db: Db, private readonly retention: Retention) {
    this.upsertVm = db.prepare(`INSERT INTO stat_vm (name, uuid, ram_kind, first_seen, last_seen) VALUES (@name, @uuid, @ramKind, @ts, @ts)
      ON CONFLICT(name) DO UPDATE SET uuid = coalesce(excluded.uuid, uuid), ram_kind = excluded.ram_kind, last_seen = max(last_seen, excluded.last_seen)`);
    this.insertRow = db.prepare(`INSERT INTO Data (VMname, DateTime, Cpu, Ram, ${RAW_IO}) VALUES (?, ?, ?, ?, ${IO_COLUMNS.map(() => '?').join(', ')})`);
    this.vms = db.prepare('SELECT id, name FROM stat_vm WHERE last_seen >= ?');
    this.getState = db.prepare('SELECT value FROM stat_state WHERE key = ?').pluck();
    this.setState = db.prepare('INSERT INTO stat_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.rollMinute = db.prepare(`INSERT OR REPLACE INTO stat_minute (vm, t, cpu_avg, cpu_max, ram_avg, ram_max, n, ${ROLL_IO}, io_n)
      SELECT ?, DateTime / 60, round(avg(Cpu) * 10), round(max(Cpu) * 10), round(avg(Ram)), max(Ram), count(*), ${MINUTE_IO}, count(DiskRd)
      FROM Data WHERE VMname = ? AND DateTime >= ? AND DateTime < ? GROUP BY DateTime / 60`);
    this.rollHour = db.prepare(`INSERT OR REPLACE INTO stat_hour (vm, t, cpu_avg, cpu_max, ram_avg, ram_max, n, ${ROLL_IO}, io_n)
      SELECT vm, t / 60, round(sum(cpu_avg * n) * 1.0 / nullif(sum(CASE WHEN cpu_avg IS NULL THEN 0 ELSE n END), 0)), max(cpu_max),
             round(sum(ram_avg * n) * 1.0 / sum(n)), max(ram_max), sum(n), ${HOUR_IO}, sum(io_n)
      FROM stat_minute WHERE vm = ? AND t >= ? AND t < ? GROUP BY t / 60`);
    this.dropRaw = db.prepare('DELETE FROM Data WHERE VMname = ? AND DateTime < ?');
    this.dropMinute = db.prepare('DELETE FROM stat_minute WHERE vm = ? AND t < ?');
    this.dropHour = db.prepare('DELETE FROM stat_hour WHERE vm = ? AND t < ?');
    this.dropVms = db.prepare('DELETE FROM stat_vm WHERE last_seen < ?');
  }

  /** One tick's samples in one transaction: a kill mid-tick leaves the tick out, never half of it. */
  record(samples: VmSample[], tickSec: number): void {
    this.db.transaction(() => {
      // The heartbeat lets the page tell "no samples" from "daemon not running".
      this.setState.run('last_tick', tickSec);
      for (const s of samples) {
        this.upsertVm.run({ name: s.name, uuid: s.uuid, ramKind: s.ramKind, ts: s.ts });
        const io = s.io;
        this.insertRow.run(s.name, s.ts, s.cpuPct === null ? null : round1(s.cpuPct), Math.round(s.ramMiB), ...IO_FIELDS.map((f) => (io ? round1(io[f]) : null)));
      }
    })();
  }

  /** Rolls up every minute and hour that ended before `nowSec`, then applies retention. */
  maintain(nowSec: number): MaintenanceReport {
    return this.db.transaction(() => {
      const minuteNow = Math.floor(nowSec / 60);
      const hourNow = Math.floor(nowSec / 3600);
      const minuteFrom = this.state('minute_next') ?? 0;
      const hourFrom = this.state('hour_next') ?? 0;
      let minutesRolled = 0;
      let hoursRolled = 0;
      if (minuteNow > minuteFrom) {
        for (const vm of this.vms.all(minuteFrom * 60) as { id: number; name: string }[]) {
          minutesRolled += this.rollMinute.run(vm.id, vm.name, minuteFrom * 60, minuteNow * 60).changes;
        }
        this.setState.run('minute_next', minuteNow);
      }
      if (hourNow > hourFrom) {
        for (const vm of this.vms.all(hourFrom * 3600) as { id: number; name: string }[]) {
          hoursRolled += this.rollHour.run(vm.id, hourFrom * 60, hourNow * 60).changes;
        }
        this.setState.run('hour_next', hourNow);
        this.applyRetention(nowSec);
      }
      return { minutesRolled, hoursRolled };
    })();
  }

  private applyRetention(nowSec: number): void {
    const r = this.retention;
    const rawCut = nowSec - r.rawRetentionHours * 3600;
    const minuteCut = Math.floor((nowSec - r.minuteRetentionDays * 86400) / 60);
    const hourCut = Math.floor((nowSec - r.hourRetentionDays * 86400) / 3600);
    for (const vm of this.vms.all(0) as { id: number; name: string }[]) {
      this.dropRaw.run(vm.name, rawCut);
      this.dropMinute.run(vm.id, minuteCut);
      this.dropHour.run(vm.id, hourCut);
    }
    this.dropVms.run(hourCut * 3600);
  }

  private state(key: string): number | null {
    const v = this.getState.get(key) as number | undefined;
    return v ?? null;
  }
}
