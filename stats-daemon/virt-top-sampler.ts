import { VirtTopStreamParser, type VirtTopFrame } from '../src/domain/stats/virt-top.js';
import type { VmSample } from '../src/domain/stats/sample.js';
import type { StreamHandle } from '../src/adapters/process/stream-command.js';
import type { Sampler } from './sampler.js';

export function buildVirtTopArgs(uri: string, intervalSec: number): string[] {
  return ['--stream', '--connect', uri, '-d', String(intervalSec)];
}

export type StreamStarter = (file: string, args: readonly string[], onStdout: (chunk: string) => void) => StreamHandle;

/**
 * One virt-top process kept running for the daemon's life: its first frame's %CPU is
 * always 0 (no previous frame to diff against), so that frame is dropped and each tick
 * takes the newest later frame.
 */
export class VirtTopSampler implements Sampler {
  readonly source = 'virt-top' as const;
  private readonly parser = new VirtTopStreamParser();
  private handle: StreamHandle | null = null;
  private framesSeen = 0;
  private latest: VirtTopFrame | null = null;

  constructor(private readonly start: StreamStarter, private readonly uri: string, private readonly intervalSec: number) {}

  /** Feeds output directly (also how tests replay a recorded stream). */
  feed(chunk: string): void {
    for (const f of this.parser.push(chunk)) {
      this.framesSeen++;
      if (this.framesSeen > 1) this.latest = f;
    }
  }

  async sample(nowMs: number): Promise<VmSample[]> {
    if (!this.handle) {
      this.handle = this.start('virt-top', buildVirtTopArgs(this.uri, this.intervalSec), (c) => this.feed(c));
      void this.handle.exited.then(() => {
        this.handle = null;
      });
    }
    const frame = this.latest;
    this.latest = null;
    if (!frame) return [];
    return frame.domains
      .filter((d) => d.id !== null)
      .map((d) => ({
        name: d.name,
        uuid: null,
        ts: Math.floor(nowMs / 1000),
        // virt-top's %CPU is of the whole host; our % is of the VM's own vCPUs, which virt-top does not print.
        cpuPct: Math.min(100, d.cpuPct),
        ramMiB: (d.memPct / 100) * frame.hostMemMB,
        ramKind: 'virt-top' as const,
        // virt-top prints disk and network columns, but this source is not packaged here to test against.
        io: null,
      }));
  }

  async close(): Promise<void> {
    this.handle?.stop();
  }
}
