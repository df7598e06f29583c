import { performance } from 'node:perf_hooks';
import type { Domain, Hypervisor } from '@unraid/libvirt';
import type { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import type { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { CpuDeltas } from '../src/domain/stats/cpu.js';
import type { VmSample } from '../src/domain/stats/sample.js';
import { IoDeltas } from '../src/domain/stats/io.js';
import type { Sampler } from './sampler.js';
import type { IoReading, IoSource } from './io-source.js';

const SHUT_OFF = 5;

interface Known { domain: Domain; name: string; uuid: string }
interface Reading { name: string; uuid: string; key: string; cpuNs: number; atMs: number; vcpus: number; memKiB: number; rssKiB: number | null }

/**
 * The default source: one kept-open libvirt connection, no process per tick. A running
 * domain's ID is unique to that run, so handle, name and UUID are looked up once per ID
 * (every binding call is a thread-pool hop). CPU from cpuTime deltas; RAM is the QEMU process's
 * RSS (libvirt's balloon.rss, else read from /proc), else libvirt's assigned memory, labelled
 * as such. Disk and network come from `io`: libvirt's all-domain statistics call through the
 * addon, or one `domstats` per tick to a kept-running virsh where the addon is not built. Where
 * that answer also carries every VM's CPU time, vCPUs and memory (a real libvirtd's does) and
 * lists the VMs itself (the addon's does), a tick is that one call and nothing else; the
 * binding's list and domainGetInfo fill in what it lacks (the test driver prints no counters).
 * If the I/O call fails the tick still has CPU and RAM, from the binding.
 */
export class LibvirtSampler implements Sampler {
  readonly source = 'libvirt' as const;
  private readonly cpu = new CpuDeltas();
  private readonly ioDeltas = new IoDeltas();
  private ioFailing = false;
  private known = new Map<number, Known>();
  private knownOn: Hypervisor | null = null;

  constructor(private readonly conn: LibvirtConnection, private readonly rss: QemuRss | null, private readonly io: IoSource | null = null) {}

  /** Last I/O error, for the daemon's log (the tick itself goes on without I/O). */
  ioError: string | null = null;

  /** VMs the last tick read with domainGetInfo because the I/O answer lacked their CPU time (tests and benches look). */
  infoCalls = 0;

  async sample(nowMs: number): Promise<VmSample[]> {
    // The I/O source first: where it gave a VM's CPU time the binding is not asked again.
    const io = await this.readIo();
    const readings = io?.domains && io.domains.every((d) => io.cpuByName.has(d.name)) ? this.readingsFromIo(io, io.domains) : await this.conn.read((h) => this.readAll(h, io));
    const out: VmSample[] = [];
    const keys = new Set<string>();
    const rssRead = new Set<string>();
    for (const r of readings) {
      keys.add(r.key);
      // libvirt's balloon.rss is the figure QemuRss reads; /proc only when libvirt did not print it.
      let rssKiB = r.rssKiB;
      if (rssKiB === null && this.rss) {
        rssKiB = await this.rss.rssKiB(r.name);
        rssRead.add(r.name);
      }
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
    this.cpu.retain(keys);
    if (io) this.ioDeltas.retain(keys);
    this.rss?.retain(rssRead);
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

  /** Every running VM from the I/O source's own list and figures: no binding call at all. */
  private readingsFromIo(io: IoReading, domains: NonNullable<IoReading['domains']>): Reading[] {
    this.infoCalls = 0;
    if (this.known.size > 0) this.known = new Map(); // no handle is needed while the source lists every VM
    return domains.map((d) => {
      const c = io.cpuByName.get(d.name)!;
      return { name: d.name, uuid: d.uuid, key: `${d.uuid}/${d.id}`, cpuNs: c.cpuNs, atMs: io.atMs, vcpus: c.vcpus, memKiB: c.memKiB, rssKiB: c.rssKiB };
    });
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
      const fromIo = io?.cpuByName.get(k.name);
      if (fromIo && io) return { name: k.name, uuid: k.uuid, key: `${k.uuid}/${id}`, cpuNs: fromIo.cpuNs, atMs: io.atMs, vcpus: fromIo.vcpus, memKiB: fromIo.memKiB, rssKiB: fromIo.rssKiB };
      calls++;
      const info = await h.domainGetInfo(k.domain);
      if (info.state === SHUT_OFF) throw new Error('stopped since the list');
      // The delta's clock is read when libvirt answers, not when the tick began: on a busy
      // host the calls queue for a while, and a tick-start clock would skew CPU % by that delay.
      const atMs = performance.now();
      return { name: k.name, uuid: k.uuid, key: `${k.uuid}/${id}`, cpuNs: Number(info.cpuTime), atMs, vcpus: info.nrVirtCpu, memKiB: info.memory, rssKiB: null };
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
