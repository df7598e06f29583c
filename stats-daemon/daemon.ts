import type { StatsWriter } from '../src/adapters/db/stats-writer.js';
import type { Logger } from '../src/log.js';
import type { Sampler } from './sampler.js';

/** One tick = sample every running VM, write them in one transaction, roll up what has ended. */
export class StatsDaemon {
  private failing = false;

  constructor(private readonly sampler: Sampler, private readonly writer: StatsWriter, private readonly log: Logger) {}

  async tick(nowMs: number): Promise<number> {
    let samples;
    try {
      samples = await this.sampler.sample(nowMs);
    } catch (e) {
      // libvirtd restarting is expected now and then: say it once, keep ticking, say when it is back.
      if (!this.failing) this.log.warn('sampling failed; will retry every tick', { source: this.sampler.source, error: (e as Error).message });
      this.failing = true;
      return 0;
    }
    if (this.failing) this.log.info('sampling works again', { source: this.sampler.source });
    this.failing = false;
    const nowSec = Math.floor(nowMs / 1000);
    this.writer.record(samples, nowSec);
    this.writer.maintain(nowSec);
    return samples.length;
  }

  close(): Promise<void> {
    return this.sampler.close();
  }
}
