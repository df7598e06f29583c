import { ConnectListAllDomainsFlags, type Domain, type Hypervisor } from '@unraid/libvirt';
import type { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import type { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { CpuDeltas } from '../src/domain/stats/cpu.js';
import type { VmSample } from '../src/domain/stats/sample.js';
import type { Sampler } from './sampler.js';

interface Reading { name: string; uuid: string; id: number | null; cpuNs: number; vcpus: number; memKiB: number }

async function read(h: Hypervisor, d: Domain): Promise<Reading> {
  const [info, name, uuid, id] = await Promise.all([h.domainGetInfo(d), h.domainGetName(d), h.domainGetUUIDString(d), h.domainGetID(d)]);
  return { name, uuid, id, cpuNs: Number(info.cpuTime), vcpus: info.nrVirtCpu, memKiB: info.memory };
}

/**
 * The default source: one kept-open libvirt connection, no process per tick. CPU from
 * domainGetInfo's cpuTime deltas; RAM is the QEMU process's RSS when it can be read
 * (qemu:///system on this host), else libvirt's assigned memory, labelled as such.
 */
export class LibvirtSampler implements Sampler {
  readonly source = 'libvirt' as const;
  private readonly cpu = new CpuDeltas();

  constructor(private readonly conn: LibvirtConnection, private readonly rss: QemuRss | null) {}

  async sample(nowMs: number): Promise<VmSample[]> {
    const readings = await this.conn.use(async (h) => {
      const domains = await h.connectListAllDomains(ConnectListAllDomainsFlags.ACTIVE);
      // A VM that stops between list and read is simply absent from this tick.
      const settled = await Promise.allSettled(domains.map((d) => read(h, d)));
      return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    });
    const keys = new Set<string>();
    const out: VmSample[] = [];
    for (const r of readings) {
      const key = `${r.uuid}/${r.id ?? ''}`;
      keys.add(key);
      const rssKiB = this.rss ? await this.rss.rssKiB(r.name) : null;
      out.push({
        name: r.name,
        uuid: r.uuid,
        ts: Math.floor(nowMs / 1000),
        cpuPct: this.cpu.next(key, r.cpuNs, nowMs, r.vcpus),
        ramMiB: (rssKiB ?? r.memKiB) / 1024,
        ramKind: rssKiB === null ? 'assigned' : 'rss',
      });
    }
    this.cpu.retain(keys);
    this.rss?.retain(new Set(readings.map((r) => r.name)));
    return out;
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
