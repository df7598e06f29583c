/**
 * Cost of statistics, in one run:
 *  1. per-tick CPU (this process + its children) of sampling 50 running VMs on a libvirt
 *     test-driver fixture: the persistent libvirt sampler vs spawning `virsh domstats` per tick
 *     (virt-top is not packaged in Debian 12, so it is not measured);
 *  2. insert rate of the daemon's writer (100 VMs per tick, one transaction per tick);
 *  3. a synthetic 100-VM × 30-day stats.sqlite at steady state (raw 24 h, minutes 30 d, hours
 *     30 d): chart query times per range, the per-minute rollup cost, and the file size.
 *
 *   npm run bench:stats
 *
 * Last line: tick_ms=… spawn_tick_ms=… tick_ratio=… query_24h_ms=… db_mb_100vm_30d=… io_tick_ms=… io_tick_ratio=… io_source=… [io_path=native|virsh io_cold_tick_ratio=… io_virsh_tick_ratio=…] io_test_driver_ratio=…
 * (targets: tick_ratio ≤ 0.05, query_24h_ms ≤ 10, db_mb_100vm_30d ≤ 300, io_tick_ratio ≤ 0.05;
 *  io_tick_ratio = tick with disk+net ÷ spawning `virsh domstats --block --interface` per tick,
 *  on 50 real paused guests of root's libvirtd when it can (io_source=real), else on the test driver)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeFixture } from '../test/helpers/fixture.js';
import { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import { createCommandRunner } from '../src/adapters/process/run-command.js';
import { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { openStatsDatabase } from '../src/adapters/db/stats-db.js';
import { StatsWriter } from '../src/adapters/db/stats-writer.js';
import { StatsReader } from '../src/adapters/db/stats-reader.js';
import { LibvirtSampler } from '../stats-daemon/libvirt-sampler.js';
import { DomStatsSampler } from '../stats-daemon/domstats-sampler.js';
import type { Sampler } from '../stats-daemon/sampler.js';
import { VirshShell } from '../src/adapters/virsh/virsh-shell.js';
import { DomStatsIoSource } from '../stats-daemon/io-source.js';
import { makeIoSource } from '../stats-daemon/make-sampler.js';
import type { StatsRange, VmSample } from '../src/domain/stats/sample.js';
import { realLibvirtAvailable, startRealGuests } from './real-io-guests.js';

const SAMPLE_VMS = 50;
const TICKS = 30;
/**
 * Ticks before measuring an in-process sampler: the daemon samples every 5 s for as long as
 * the node runs, so its steady state (code optimised by V8, reached after ~120 ticks = 10
 * minutes, measured) is what it costs; the first ticks are printed too ("cold"). A spawned
 * virsh costs the same from its first tick, so spawning samplers get 3.
 */
const WARMUP_TICKS = 150;
const DB_VMS = 100;
const DAYS = 30;
const RET = { rawRetentionHours: 24, minuteRetentionDays: 30, hourRetentionDays: 365 };

/** CPU ms of this process plus its reaped children (/proc/self/stat cutime+cstime, 100 Hz ticks). */
function cpuMs(): number {
  const own = process.cpuUsage();
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  const childTicks = Number(fields[13]) + Number(fields[14]);
  return (own.user + own.system) / 1000 + childTicks * 10;
}

/** CPU ms of a running child (the kept virsh is not reaped, so cutime does not see it). */
function pidCpuMs(pid: number | null): number {
  if (pid === null) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

async function ticks(sampler: Sampler, n: number, child: () => number | null): Promise<{ cpu: number; wall: number; vms: number }> {
  const c0 = cpuMs() + pidCpuMs(child());
  const w0 = performance.now();
  let vms = 0;
  for (let i = 0; i < n; i++) vms = (await sampler.sample(Date.now())).length;
  return { cpu: (cpuMs() + pidCpuMs(child()) - c0) / n, wall: (performance.now() - w0) / n, vms };
}

/** CPU and wall per tick at steady state, and `cold`: the CPU of the first TICKS ticks after 3. */
async function perTick(sampler: Sampler, child: () => number | null = () => null, warmup = WARMUP_TICKS): Promise<{ cpu: number; wall: number; vms: number; cold: number }> {
  for (let i = 0; i < 3; i++) await sampler.sample(Date.now());
  const cold = await ticks(sampler, TICKS, child);
  for (let i = 3 + TICKS; i < warmup; i++) await sampler.sample(Date.now());
  return { ...(warmup > 3 + TICKS ? await ticks(sampler, TICKS, child) : cold), cold: cold.cpu };
}

/**
 * Disk + network I/O options for 50 running VMs, each tick's CPU including every process it uses:
 *  - the default: persistent libvirt sampler + libvirt's all-domain statistics call through the
 *    addon (native/domstats.c), or, where it is not built, one `domstats` per tick to a kept-running virsh;
 *  - per-tick spawn of `virsh domstats --block --interface` (what io_tick_ratio divides by).
 * The test driver prints no block/interface counters, so the text to parse is short here; on a
 * real libvirtd each VM adds ~15 lines per tick (measured below when libvirtd is reachable).
 */
async function ioOptions() {
  const f = makeFixture(Array.from({ length: SAMPLE_VMS }, (_, i) => ({ name: `kfst-io${i}`, vcpus: 1, memoryMiB: 256, disks: [{ path: `/var/tmp/kfst-io${i}.qcow2` }] })));
  const source = makeIoSource(f.uri, 10_000);
  const withIo = new LibvirtSampler(new LibvirtConnection(f.uri), null, source);
  const io = await perTick(withIo, () => (source instanceof DomStatsIoSource ? source.shellPid : null));
  await withIo.close();
  const run = createCommandRunner();
  const spawn = {
    source: 'domstats' as const,
    sample: async () => {
      await run('virsh', ['-c', f.uri, 'domstats', '--raw', '--list-active', '--block', '--interface'], { timeoutMs: 15_000 });
      return [];
    },
    close: async () => undefined,
  };
  const sp = await perTick(spawn, undefined, 3);
  rmSync(f.dir, { recursive: true, force: true });
  console.log(`I/O sampling, ${SAMPLE_VMS} running VMs (test driver):`);
  console.log(`  libvirt sampler + ${source.kind === 'native' ? 'all-domain statistics (addon)      ' : 'kept virsh (one domstats on stdin)'}   ${io.cpu.toFixed(2)} ms CPU/tick (any child included), ${io.wall.toFixed(2)} ms wall`);
  console.log(`  spawned virsh domstats --block --interface per tick                   ${sp.cpu.toFixed(2)} ms CPU/tick, ${sp.wall.toFixed(2)} ms wall`);
  return { ioTick: io.cpu, ioSpawn: sp.cpu };
}

/**
 * The same comparison on root's libvirtd with 50 real (paused) guests, each with a disk and a
 * tap: here domstats prints real counters and CPU times, which the test driver never does, so
 * this is the figure that counts where it can run (io_tick_ratio then comes from it).
 */
async function realIoOptions(): Promise<{ ioTick: number; ioSpawn: number; vms: number; path: string; virshTick: number; coldTick: number } | null> {
  if (!realLibvirtAvailable()) {
    console.log('  (real libvirtd I/O not measured: needs root, libvirtd and QEMU)');
    return null;
  }
  const t0 = performance.now();
  const guests = startRealGuests(SAMPLE_VMS);
  try {
    console.log(`I/O sampling, ${SAMPLE_VMS} real paused guests on qemu:///system (started in ${((performance.now() - t0) / 1000).toFixed(0)} s):`);
    const source = makeIoSource('qemu:///system', 10_000);
    const withIo = new LibvirtSampler(new LibvirtConnection('qemu:///system'), new QemuRss(), source);
    const io = await perTick(withIo, () => (source instanceof DomStatsIoSource ? source.shellPid : null));
    const shell = new VirshShell('qemu:///system', 10_000);
    const withVirsh = new LibvirtSampler(new LibvirtConnection('qemu:///system'), new QemuRss(), new DomStatsIoSource(shell));
    const viaVirsh = await perTick(withVirsh, () => shell.pid);
    await withVirsh.close();
    const bare = new LibvirtSampler(new LibvirtConnection('qemu:///system'), new QemuRss());
    const noIo = await perTick(bare);
    await withIo.close();
    await bare.close();
    const run = createCommandRunner();
    const sp = await perTick({
      source: 'domstats' as const,
      sample: async () => {
        await run('virsh', ['-c', 'qemu:///system', 'domstats', '--raw', '--list-active', '--block', '--interface'], { timeoutMs: 15_000 });
        return [];
      },
      close: async () => undefined,
    }, undefined, 3);
    console.log(`  libvirt sampler, CPU/RAM/disk/net from ${source.kind === 'native' ? 'the all-domain statistics call (addon)' : 'one domstats on the kept virsh     '}  ${io.cpu.toFixed(2)} ms CPU/tick at steady state (${io.cold.toFixed(2)} cold; any child and /proc reads included), ${io.wall.toFixed(2)} ms wall, ${io.vms} VMs`);
    console.log(`  libvirt sampler, the same from one domstats on the kept virsh        ${viaVirsh.cpu.toFixed(2)} ms CPU/tick (${viaVirsh.cold.toFixed(2)} cold; virsh child included), ${viaVirsh.wall.toFixed(2)} ms wall`);
    console.log(`  libvirt sampler without I/O (domainGetInfo per VM)                    ${noIo.cpu.toFixed(2)} ms CPU/tick, ${noIo.wall.toFixed(2)} ms wall`);
    console.log(`  spawned virsh domstats --block --interface per tick                   ${sp.cpu.toFixed(2)} ms CPU/tick, ${sp.wall.toFixed(2)} ms wall`);
    return { ioTick: io.cpu, ioSpawn: sp.cpu, vms: io.vms, path: source.kind, virshTick: viaVirsh.cpu, coldTick: io.cold };
  } finally {
    guests.destroy();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function samplers() {
  const f = makeFixture(Array.from({ length: SAMPLE_VMS }, (_, i) => ({ name: `kfst-b${i}`, vcpus: 1 + (i % 4), memoryMiB: 256 + 64 * (i % 8) })));
  const persistent = new LibvirtSampler(new LibvirtConnection(f.uri), null);
  const spawned = new DomStatsSampler(createCommandRunner(), f.uri);
  const p = await perTick(persistent);
  const s = await perTick(spawned, undefined, 3);
  await persistent.close();
  rmSync(f.dir, { recursive: true, force: true });
  console.log(`sampling ${p.vms} running VMs (test driver), ${TICKS} ticks each (in-process samplers after ${WARMUP_TICKS} ticks of warm-up):`);
  console.log(`  persistent libvirt  ${p.cpu.toFixed(2)} ms CPU/tick, ${p.wall.toFixed(2)} ms wall/tick`);
  console.log(`  virsh domstats      ${s.cpu.toFixed(2)} ms CPU/tick (incl. the virsh process), ${s.wall.toFixed(2)} ms wall/tick (${s.vms} VMs: the test driver's domstats reports state only)`);
  await realLibvirt();
  return { tick: p.cpu, spawnTick: s.cpu };
}

/** The same comparison on this host's libvirtd, read-only, with whatever guests run there now. */
async function realLibvirt() {
  if (process.getuid?.() !== 0 || !existsSync('/run/libvirt/libvirt-sock')) {
    console.log('  (real libvirtd not measured: needs root and a running libvirtd)');
    return;
  }
  const persistent = new LibvirtSampler(new LibvirtConnection('qemu:///system'), new QemuRss());
  const spawned = new DomStatsSampler(createCommandRunner(), 'qemu:///system');
  try {
    const p = await perTick(persistent);
    const s = await perTick(spawned, undefined, 3);
    console.log(`real libvirtd (qemu:///system), ${p.vms} running guests: persistent ${p.cpu.toFixed(2)} ms CPU/tick (RSS from /proc included), domstats ${s.cpu.toFixed(2)} ms CPU/tick (${s.vms} VMs)`);
  } catch (e) {
    console.log(`  (real libvirtd not measured: ${(e as Error).message})`);
  } finally {
    await persistent.close();
  }
}

function insertRate(dir: string): number {
  const db = openStatsDatabase(join(dir, 'insert'));
  const w = new StatsWriter(db, RET);
  const ticks = 500;
  const t0 = Math.floor(Date.now() / 1000);
  const started = performance.now();
  for (let k = 0; k < ticks; k++) {
    const ts = t0 + k * 5;
    const samples: VmSample[] = Array.from({ length: DB_VMS }, (_, i) => ({ name: `vm-${i}`, uuid: null, ts, cpuPct: (i * 7 + k) % 100, ramMiB: 512 + i, ramKind: 'rss' }));
    w.record(samples, ts);
    w.maintain(ts);
  }
  const ms = performance.now() - started;
  db.close();
  const rate = (ticks * DB_VMS) / (ms / 1000);
  console.log(`writer: ${ticks} ticks × ${DB_VMS} VMs with rollups in ${ms.toFixed(0)} ms = ${Math.round(rate)} rows/s (${(ms / ticks).toFixed(2)} ms per tick)`);
  return rate;
}

/** Steady state after 30 days of 100 VMs, built in bulk with SQL in the daemon's write order. */
function synthetic(dir: string) {
  const db = openStatsDatabase(join(dir, 'synthetic'));
  const now = Math.floor(Date.now() / 1000 / 3600) * 3600;
  const built = performance.now();
  db.transaction(() => {
    const vm = db.prepare('INSERT INTO stat_vm (id, name, uuid, ram_kind, first_seen, last_seen) VALUES (?, ?, NULL, ?, ?, ?)');
    for (let i = 1; i <= DB_VMS; i++) vm.run(i, `vm-${String(i).padStart(3, '0')}`, 'rss', now - DAYS * 86400, now);
    db.exec(`WITH RECURSIVE tick(ts) AS (SELECT ${now - 86400} UNION ALL SELECT ts + 5 FROM tick WHERE ts + 5 < ${now})
      INSERT INTO Data (VMname, DateTime, Cpu, Ram) SELECT v.name, tick.ts, (abs(random()) % 1000) / 10.0, 512 + abs(random()) % 256 FROM tick, stat_vm v ORDER BY tick.ts`);
    db.exec(`WITH RECURSIVE m(t) AS (SELECT ${(now - DAYS * 86400) / 60} UNION ALL SELECT t + 1 FROM m WHERE t + 1 < ${now / 60})
      INSERT INTO stat_minute (vm, t, cpu_avg, cpu_max, ram_avg, ram_max, n) SELECT v.id, m.t, abs(random()) % 1000, 1000, 600, 700, 12 FROM m, stat_vm v ORDER BY m.t`);
    db.exec(`INSERT INTO stat_hour (vm, t, cpu_avg, cpu_max, ram_avg, ram_max, n)
      SELECT vm, t / 60, avg(cpu_avg), max(cpu_max), avg(ram_avg), max(ram_max), sum(n) FROM stat_minute GROUP BY vm, t / 60`);
    db.prepare("INSERT INTO stat_state (key, value) VALUES ('minute_next', ?), ('hour_next', ?)").run(now / 60, now / 3600);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  const counts = db.prepare('SELECT (SELECT count(*) FROM Data), (SELECT count(*) FROM stat_minute), (SELECT count(*) FROM stat_hour)').raw().get() as number[];
  console.log(`synthetic DB: ${counts[0]} raw rows, ${counts[1]} minute rows, ${counts[2]} hour rows, built in ${((performance.now() - built) / 1000).toFixed(1)} s`);

  const reader = new StatsReader(db, 5);
  const times: Record<StatsRange, number> = { '1h': 0, '24h': 0, '7d': 0, '30d': 0 };
  for (const range of Object.keys(times) as StatsRange[]) {
    const ms: number[] = [];
    let points = 0;
    for (let k = 0; k < 40; k++) {
      const t0 = performance.now();
      points = reader.series(`vm-${String(1 + ((k * 37) % DB_VMS)).padStart(3, '0')}`, range, now).t.length;
      ms.push(performance.now() - t0);
    }
    times[range] = median(ms);
    console.log(`  chart ${range.padEnd(3)} one VM: ${points} points, median ${times[range].toFixed(2)} ms`);
  }
  const spark: number[] = [];
  for (let k = 0; k < 10; k++) {
    const t0 = performance.now();
    for (let i = 1; i <= DB_VMS; i++) reader.sparkline(`vm-${String(i).padStart(3, '0')}`, now);
    spark.push(performance.now() - t0);
  }
  console.log(`  sparklines for all ${DB_VMS} VMs (page render): median ${median(spark).toFixed(2)} ms`);

  // One more minute of raw rows, then the daemon's per-minute rollup (and the hourly retention pass).
  const w = new StatsWriter(db, RET);
  for (let ts = now; ts < now + 60; ts += 5) {
    w.record(Array.from({ length: DB_VMS }, (_, i) => ({ name: `vm-${String(i + 1).padStart(3, '0')}`, uuid: null, ts, cpuPct: 10, ramMiB: 600, ramKind: 'rss' as const })), ts);
  }
  let t0 = performance.now();
  w.maintain(now + 60);
  console.log(`  minute rollup of ${DB_VMS} VMs: ${(performance.now() - t0).toFixed(1)} ms`);
  t0 = performance.now();
  w.maintain(now + 3600 + 60);
  console.log(`  hourly rollup + retention pass: ${(performance.now() - t0).toFixed(1)} ms`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const mb = statSync(join(dir, 'synthetic', 'stats.sqlite')).size / 1024 / 1024;
  console.log(`  file size: ${mb.toFixed(1)} MiB`);
  return { query24h: times['24h'], mb };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'kfst-bench-'));
  try {
    const { tick, spawnTick } = await samplers();
    const testIo = await ioOptions();
    const realIo = await realIoOptions();
    const { ioTick, ioSpawn } = realIo ?? testIo;
    const ioSource = realIo ? 'real' : 'test-driver';
    const ioPath = realIo ? `io_path=${realIo.path} io_cold_tick_ratio=${(realIo.coldTick / realIo.ioSpawn).toFixed(3)} io_virsh_tick_ratio=${(realIo.virshTick / realIo.ioSpawn).toFixed(3)} ` : '';
    insertRate(dir);
    const { query24h, mb } = synthetic(dir);
    console.log(`tick_ms=${tick.toFixed(2)} spawn_tick_ms=${spawnTick.toFixed(2)} tick_ratio=${(tick / spawnTick).toFixed(3)} query_24h_ms=${query24h.toFixed(2)} db_mb_100vm_30d=${mb.toFixed(1)} io_tick_ms=${ioTick.toFixed(2)} io_tick_ratio=${(ioTick / ioSpawn).toFixed(3)} io_source=${ioSource} ${ioPath}io_test_driver_ratio=${(testIo.ioTick / testIo.ioSpawn).toFixed(3)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
