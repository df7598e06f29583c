import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStatsDatabase } from '../../src/adapters/db/stats-db.js';
import { StatsWriter } from '../../src/adapters/db/stats-writer.js';
import { StatsReader } from '../../src/adapters/db/stats-reader.js';
import type { VmSample } from '../../src/domain/stats/sample.js';

const RET = { rawRetentionHours: 24, minuteRetentionDays: 30, hourRetentionDays: 365 };
const T0 = 1_700_000_400; // a whole hour (1_700_000_400 / 3600 = 472222.33…) is not needed: tests use offsets from it.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'kfst-store-'));
  dirs.push(dir);
  const db = openStatsDatabase(dir);
  return { db, w: new StatsWriter(db, RET), r: new StatsReader(db, 5) };
}

const sample = (name: string, ts: number, cpuPct: number | null, ramMiB: number): VmSample => ({ name, uuid: `uuid-${name}`, ts, cpuPct, ramMiB, ramKind: 'rss' });

/** Runs the daemon's tick sequence on a synthetic clock: record then maintain, every 5 s. */
function run(w: StatsWriter, from: number, to: number, at: (ts: number) => VmSample[]) {
  for (let ts = from; ts < to; ts += 5) {
    w.record(at(ts), ts);
    w.maintain(ts);
  }
}

describe('stats rollups on a synthetic clock', () => {
  it('keeps the thesis table and index, and fills 1-minute avg/max from the 5-s rows', () => {
    const { db, w, r } = setup();
    const start = Math.floor(T0 / 60) * 60;
    // CPU alternates 10/30 (avg 20, max 30); RAM climbs 100..111 within each minute.
    run(w, start, start + 180, (ts) => [sample('kfst-a', ts, (ts / 5) % 2 ? 30 : 10, 100 + ((ts - start) % 60) / 5)]);
    expect(db.prepare("SELECT sql FROM sqlite_master WHERE name IN ('Data', 'name_date') ORDER BY name").pluck().all()).toEqual([
      // The thesis's four columns first and unchanged; the disk/network columns are appended (schema v2).
      'CREATE TABLE Data (VMname TEXT, DateTime DATETIME, Cpu INT, Ram INT, DiskRd REAL, DiskWr REAL, DiskRdOps REAL, DiskWrOps REAL, NetIn REAL, NetOut REAL, NetInPkts REAL, NetOutPkts REAL)',
      'CREATE INDEX name_date ON Data (VMname, DateTime)',
    ]);
    expect(db.prepare('SELECT count(*) FROM Data').pluck().get()).toBe(36);
    const s = r.series('kfst-a', '24h', start + 185);
    // The first two minutes have ended; the third is still open at start+175 (last maintain).
    expect(s.t).toEqual([start, start + 60]);
    expect(s.cpu).toEqual([20, 20]);
    expect(s.cpuMax).toEqual([30, 30]);
    expect(s.ram).toEqual([106, 106]); // avg of 100..111 = 105.5 → rounds to 106
    expect(s.ramMax).toEqual([111, 111]);
    expect(r.series('kfst-a', '1h', start + 185).t).toHaveLength(36);
  });

  it('rolls hours from minutes weighted by sample count, and 7 d folds minutes into 10-min buckets', () => {
    const { w, r } = setup();
    const h0 = Math.ceil(T0 / 3600) * 3600;
    // 40 % for the first 30 minutes, 0 % for the next 30; RAM 200 then 400.
    run(w, h0, h0 + 3600 + 5, (ts) => [sample('kfst-b', ts, ts - h0 < 1800 ? 40 : 0, ts - h0 < 1800 ? 200 : 400)]);
    const hours = r.series('kfst-b', '30d', h0 + 3605);
    expect(hours.t).toEqual([h0]);
    expect(hours.cpu).toEqual([20]);
    expect(hours.cpuMax).toEqual([40]);
    expect(hours.ram).toEqual([300]);
    expect(hours.ramMax).toEqual([400]);
    const week = r.series('kfst-b', '7d', h0 + 3605);
    expect(week.t).toEqual([0, 1, 2, 3, 4, 5].map((i) => h0 + i * 600));
    expect(week.cpu).toEqual([40, 40, 40, 0, 0, 0]);
    expect(week.resolutionSec).toBe(600);
  });

  it('applies retention: raw 24 h, minutes 30 d, hours 1 y', () => {
    const { db, w } = setup();
    const h0 = Math.ceil(T0 / 3600) * 3600;
    run(w, h0, h0 + 120, (ts) => [sample('kfst-c', ts, 5, 50)]);
    const count = () => db.prepare("SELECT (SELECT count(*) FROM Data), (SELECT count(*) FROM stat_minute), (SELECT count(*) FROM stat_hour)").raw().get();
    w.maintain(h0 + 7200);
    expect(count()).toEqual([24, 2, 1]);
    w.maintain(h0 + 25 * 3600); // raw gone after 24 h
    expect(count()).toEqual([0, 2, 1]);
    w.maintain(h0 + 31 * 86400); // minutes gone after 30 d
    expect(count()).toEqual([0, 0, 1]);
    w.maintain(h0 + 366 * 86400); // hours gone after a year, and the VM's key with them
    expect(count()).toEqual([0, 0, 0]);
    expect(db.prepare('SELECT count(*) FROM stat_vm').pluck().get()).toBe(0);
  });

  it('after a stop, catches up exactly the minutes it missed — no double counting, nothing lost but the gap', () => {
    const { w, r } = setup();
    const start = Math.floor(T0 / 60) * 60;
    run(w, start, start + 60, (ts) => [sample('kfst-d', ts, 50, 10)]);
    // Daemon down for 10 minutes, then back: the first tick rolls the old minute, the gap stays empty.
    run(w, start + 660, start + 790, (ts) => [sample('kfst-d', ts, 50, 10)]);
    const s = r.series('kfst-d', '24h', start + 800);
    expect(s.t).toEqual([start, start + 660, start + 720]);
    expect(s.cpu).toEqual([50, 50, 50]);
  });

  it('skips the first sample\'s unknown CPU in averages but counts its RAM', () => {
    const { w, r } = setup();
    const start = Math.floor(T0 / 60) * 60;
    run(w, start, start + 65, (ts) => [sample('kfst-e', ts, ts === start ? null : 60, 10)]);
    expect(r.series('kfst-e', '24h', start + 70).cpu).toEqual([60]);
    expect(r.sparkline('kfst-e', start + 65).t.length).toBeGreaterThan(1);
  });

  it('disk and network rates: raw for 1 h, minute averages weighted into hours, samples without I/O left out, retention as CPU/RAM', () => {
    const { db, w, r } = setup();
    const start = Math.floor(T0 / 3600) * 3600;
    const io = (rd: number, out: number) => ({ diskRdBytes: rd, diskWrBytes: 2 * rd, diskRdOps: rd / 1000, diskWrOps: 0.25, netInBytes: 10, netOutBytes: out, netInPkts: 0.5, netOutPkts: out / 100 });
    // Minute 0: no I/O delta yet for the first sample (null), then 1000 B/s read; minute 1: 3000 B/s read.
    run(w, start, start + 125, (ts) => [{ ...sample('kfst-io', ts, 10, 100), io: ts === start ? null : io(ts < start + 60 ? 1000 : 3000, 500) }]);
    const raw = r.series('kfst-io', '1h', start + 125);
    expect(raw.io.diskRdBytes[0]).toBeNull();
    expect(raw.io.diskRdBytes[1]).toBe(1000);
    expect(raw.io.netOutBytes[1]).toBe(500);
    const m = r.series('kfst-io', '24h', start + 125);
    expect(m.t).toEqual([start, start + 60]);
    expect(m.io.diskRdBytes).toEqual([1000, 3000]);
    expect(m.io.diskWrBytes).toEqual([2000, 6000]);
    expect(m.io.diskWrOps).toEqual([0.3, 0.3]); // operations/s rounded to 0.1
    expect(db.prepare('SELECT io_n FROM stat_minute ORDER BY t').pluck().all()).toEqual([11, 12]);
    // Close the hour: the hour's average weights minute 0 by its 11 samples with I/O and minute 1 by 12.
    run(w, start + 125, start + 3605, (ts) => [{ ...sample('kfst-io', ts, 10, 100), io: io(3000, 500) }]);
    const h = r.series('kfst-io', '30d', start + 3605);
    expect(h.t).toEqual([start]);
    const expected = (11 * 1000 + 12 * 3000 + 58 * 12 * 3000) / (11 + 12 + 58 * 12);
    expect(h.io.diskRdBytes[0]).toBe(Math.round(expected));
    // Sparklines carry disk (read + written) and network (in + out) totals.
    const sp = r.sparkline('kfst-io', start + 3605);
    expect(sp.disk.at(-1)).toBe(9000);
    expect(sp.net.at(-1)).toBe(510);
    // Retention drops the I/O with its row: 25 h later the raw hour is gone, the minutes stay.
    w.record([{ ...sample('kfst-io', start + 25 * 3600, 10, 100), io: io(1, 1) }], start + 25 * 3600);
    w.maintain(start + 25 * 3600 + 1);
    expect(db.prepare('SELECT count(*) FROM Data WHERE DateTime < ?').pluck().get(start + 3600)).toBe(0);
    expect(db.prepare('SELECT count(*) FROM stat_minute WHERE t < ? AND disk_rd IS NOT NULL').pluck().get((start + 3600) / 60)).toBe(60);
  });
});
