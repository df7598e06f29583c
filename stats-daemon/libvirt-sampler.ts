import { performance } from 'node:perf_hooks';
import type { Domain, Hypervisor } from '@unraid/libvirt';
import type { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import type { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { CpuDeltas } from '../src/domain/stats/cpu.js';
import type { VmSample } from '../src/domain/stats/sample.js';
import { IoDeltas } from '../src/domain/stats/io.js';
import type { Sampler } from './sampler.js';
import type { DomStatsIoSource, IoReading } from './io-source.js';

const SHUT_OFF = 5;

interface Known { domain: Domain; name: string; uuid: string }
interface Reading { name: string; uuid: string; key: string; cpuNs: number; atMs: number; vcpus: number; memKiB: number }

/**
 * The default source: one kept-open libvirt connection, no process per tick. A running
 * domain's ID is unique to that run, so handle, name and UUID are looked up once per ID
 * (every binding call is a thread-pool hop). CPU from cpuTime deltas; RAM is the QEMU process's
 * RSS when it can be read (qemu:///system on this host), else libvirt's assigned memory,
 * labelled as such. Disk and network come from `io` (one `domstats` per tick to a kept-running
 * virsh); where that command also printed a VM's CPU time, vCPUs and memory (a real libvirtd
 * does) the VM needs no domainGetInfo, so a tick is one list call plus one virsh command. If
 * the virsh command fails the tick still has CPU and RAM, from the binding.
 */
export class LibvirtSampler implements Sampler {
  readonly source = 'libvirt' as const;
  private readonly cpu = new CpuDeltas();
  private readonly ioDeltas = new IoDeltas();
  private ioFailing = false;
  private known = new Map<number, Known>();
  private knownOn: Hypervisor | null = null;

  constructor(private readonly conn: LibvirtConnection, private readonly rss: QemuRss | null, private readonly io: DomStatsIoSource | null = null) {}

  /** Last I/O error, for the daemon's log (the tick itself goes on without I/O). */
  ioError: string | null = null;

  /** VMs the last tick read with domainGetInfo because the virsh answer lacked their CPU time (tests and benches look). */
  infoCalls = 0;

  async sample(nowMs: number): Promise<VmSample[]> {
    // The kept virsh first: where it printed a VM's CPU time the binding is not asked again.
    const io = await this.readIo();
    const readings = await this.conn.read((h) => this.readAll(h, io));
    const out: VmSample[] = [];
    for (const r of readings) {
      const rssKiB = this.rss ? await this.rss.rssKiB(r.name) : null;
      const c = io?.byName.get(r.name);
      out.push({
        name: r.name,
        uuid: r.uuid,
        ts: Math.floor(nowMs / 1000),
        cpuPct: this.cpu.next(r.key, r.cpuNs, r.atMs, r.vcpus),
        ramMiB: (rssKiB ?? r.memKiB) / 1024,
        ramKind: rssKiB === null ? 'assigned' : 'rss',
        io: c && io ? this.ioDeltas.next(r.key, c, io.atMs) : null,
      });
    }
    this.cpu.retain(new Set(readings.map((r) => r.key)));
    if (io) this.ioDeltas.retain(new Set(readings.map((r) => r.key)));
    this.rss?.retain(new Set(readings.map((r) => r.name)));
    return out;
  }

  private async readIo(): Promise<IoReading | null> {
    if (!this.io) return null;
    try {
      const r = await this.io.read();
      this.ioError = null;
      return r;
    } catch (e) {
      this.ioError = (e as Error).message;
      return null;
    }
  }

  private async readAll(h: Hypervisor, io: IoReading | null): Promise<Reading[]> {
    // Handles belong to one connection: after a reconnect, look everything up again.
    if (this.knownOn !== h) {
      this.known = new Map();
      this.knownOn = h;
    }
    const ids = await h.connectListDomains();
    const live = new Set(ids);
    for (const id of this.known.keys()) if (!live.has(id)) this.known.delete(id);
    await Promise.allSettled(ids.filter((id) => !this.known.has(id)).map(async (id) => {
      const domain = await h.domainLookupByID(id);
      const [name, uuid] = await Promise.all([h.domainGetName(domain), h.domainGetUUIDString(domain)]);
      this.known.set(id, { domain, name, uuid });
    }));
    // A VM that stops between list and read is simply absent from this tick.
    let calls = 0;
    const settled = await Promise.allSettled([...this.known.entries()].map(async ([id, k]): Promise<Reading> => {
      const fromVirsh = io?.cpuByName.get(k.name);
      if (fromVirsh && io) return { name: k.name, uuid: k.uuid, key: `${k.uuid}/${id}`, cpuNs: fromVirsh.cpuNs, atMs: io.atMs, vcpus: fromVirsh.vcpus, memKiB: fromVirsh.memKiB };
      calls++;
      const info = await h.domainGetInfo(k.domain);
      if (info.state === SHUT_OFF) throw new Error('stopped since the list');
      // The delta's clock is read when libvirt answers, not when the tick began: on a busy
      // host the calls queue for a while, and a tick-start clock would skew CPU % by that delay.
      const atMs = performance.now();
      return { name: k.name, uuid: k.uuid, key: `${k.uuid}/${id}`, cpuNs: Number(info.cpuTime), atMs, vcpus: info.nrVirtCpu, memKiB: info.memory };
    }));
    this.infoCalls = calls;
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  }

  async close(): Promise<void> {
    this.known = new Map();
    this.io?.close();
    await this.conn.close();
  }
}
