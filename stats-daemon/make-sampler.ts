import type { StatsConfig } from '../src/config.js';
import { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { createCommandRunner } from '../src/adapters/process/run-command.js';
import { startStream } from '../src/adapters/process/stream-command.js';
import { DomStatsSampler } from './domstats-sampler.js';
import { LibvirtSampler } from './libvirt-sampler.js';
import { VirshShell } from '../src/adapters/virsh/virsh-shell.js';
import { DomStatsIoSource } from './io-source.js';
import { VirtTopSampler } from './virt-top-sampler.js';
import type { Sampler } from './sampler.js';

/**
 * `auto` is the persistent libvirt sampler: measured (bench/stats.ts) at a small fraction
 * of spawning virsh domstats per tick, and available wherever the manager itself works.
 */
export function makeSampler(source: StatsConfig['source'], uri: string, intervalSec: number, timeoutMs = 10_000): Sampler {
  switch (source) {
    case 'auto':
    case 'libvirt':
      return new LibvirtSampler(new LibvirtConnection(uri, timeoutMs), new QemuRss(), new DomStatsIoSource(new VirshShell(uri, timeoutMs)));
    case 'domstats':
      return new DomStatsSampler(createCommandRunner(), uri);
    case 'virt-top':
      return new VirtTopSampler(startStream, uri, intervalSec);
  }
}
