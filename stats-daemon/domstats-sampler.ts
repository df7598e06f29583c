import type { CommandRunner } from '../src/adapters/process/run-command.js';
import { CpuDeltas } from '../src/domain/stats/cpu.js';
import { domStatsRam, parseDomStats } from '../src/domain/stats/domstats.js';
import { IoDeltas, ioFromDomStats } from '../src/domain/stats/io.js';
import type { VmSample } from '../src/domain/stats/sample.js';
import type { Sampler } from './sampler.js';

export function buildDomStatsArgs(uri: string): string[] {
  return ['-c', uri, 'domstats', '--raw', '--list-active', '--state', '--cpu-total', '--balloon', '--vcpu', '--block', '--interface'];
}

/** Spawns `virsh domstats` once per tick: works everywhere virsh does, costs a process per tick. */
export class DomStatsSampler implements Sampler {
  readonly source = 'domstats' as const;
  private readonly cpu = new CpuDeltas();
  private readonly io = new IoDeltas();

  constructor(private readonly run: CommandRunner, private readonly uri: string) {}

  async sample(nowMs: number): Promise<VmSample[]> {
    const r = await this.run('virsh', buildDomStatsArgs(this.uri), { timeoutMs: 15_000, failureMessage: 'virsh domstats could not read VM statistics.' });
    const keys = new Set<string>();
    const out: VmSample[] = [];
    for (const d of parseDomStats(r.stdout)) {
      const cpuNs = Number(d.values.get('cpu.time'));
      const vcpus = Number(d.values.get('vcpu.current') ?? 1);
      const ram = domStatsRam(d.values);
      if (!Number.isFinite(cpuNs) || !ram) continue;
      keys.add(d.name);
      out.push({
        name: d.name,
        uuid: null,
        ts: Math.floor(nowMs / 1000),
        cpuPct: this.cpu.next(d.name, cpuNs, nowMs, vcpus),
        ramMiB: ram.kib / 1024,
        ramKind: ram.kind,
        io: this.io.next(d.name, ioFromDomStats(d), nowMs),
      });
    }
    this.cpu.retain(keys);
    this.io.retain(keys);
    return out;
  }

  async close(): Promise<void> {}
}
