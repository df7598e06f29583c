import type { StatsConfig } from '../src/config.js';
import { LibvirtConnection } from '../src/adapters/libvirt/connection.js';
import { QemuRss } from '../src/adapters/host/qemu-rss.js';
import { createCommandRunner } from '../src/adapters/process/run-command.js';
import { startStream } from '../src/adapters/process/stream-command.js';
import { DomStatsSampler } from './domstats-sampler.js';
import { LibvirtSampler } from './libvirt-sampler.js';
import { VirshShell } from '../src/adapters/virsh/virsh-shell.js';
import { DomStatsIoSource, NativeIoSource, type IoSource } from './io-source.js';
import { loadNativeDomStats, NativeDomStats } from '../src/adapters/libvirt/native-domstats.js';
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
      return new LibvirtSampler(new LibvirtConnection(uri, timeoutMs), new QemuRss(), makeIoSource(uri, timeoutMs));
    case 'domstats':
      return new DomStatsSampler(createCommandRunner(), uri);
    case 'virt-top':
      return new VirtTopSampler(startStream, uri, intervalSec);
  }
}

/**
 * Disk and network (and on a real libvirtd CPU and memory too): libvirt's all-domain statistics
 * call through the addon (scripts/build-native.sh), else one `domstats` per tick to a
 * kept-running virsh, the same figures at a higher cost per tick.
 */
export function makeIoSource(uri: string, timeoutMs: number): IoSource {
  const { addon } = loadNativeDomStats();
  return addon ? new NativeIoSource(new NativeDomStats(addon, uri, timeoutMs)) : new DomStatsIoSource(new VirshShell(uri, timeoutMs));
}

/** For the daemon's start-up line: which I/O source runs, and why not the addon when it does not. */
export function describeIoSource(source: StatsConfig['source']): string {
  if (source !== 'auto' && source !== 'libvirt') return source === 'domstats' ? 'spawned virsh domstats' : 'none';
  const { addon, reason } = loadNativeDomStats();
  return addon ? 'libvirt all-domain statistics (native addon)' : `kept-running virsh (${reason})`;
}
