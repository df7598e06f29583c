import { describe, expect, it } from 'vitest';
import { parseDomStats } from '../../src/domain/stats/domstats.js';
import { cpuFromDomStats } from '../../src/domain/stats/domstats-cpu.js';

// As libvirt 9.0's qemu driver prints `domstats --raw --cpu-total --vcpu --balloon` (a paused TCG guest).
const REAL = `Domain: 'kfbench-io-probe'
  cpu.time=297678000
  cpu.user=71442000
  cpu.system=226235000
  cpu.cache.monitor.count=0
  balloon.current=16384
  balloon.maximum=16384
  balloon.rss=35636
  vcpu.current=1
  vcpu.maximum=2
  vcpu.0.state=1
  vcpu.0.time=0

Domain: 'testdriver'
  state.state=1
`;

describe('cpuFromDomStats', () => {
  it('reads what domainGetInfo would answer (cpu.time, vcpu.current, balloon.current) and QEMU\'s RSS (balloon.rss)', () => {
    const [real, test] = parseDomStats(REAL);
    expect(cpuFromDomStats(real!)).toEqual({ cpuNs: 297678000, vcpus: 1, memKiB: 16384, rssKiB: 35636 });
    expect(cpuFromDomStats(parseDomStats("Domain: 'a'\n  cpu.time=5\n  vcpu.current=1\n  balloon.current=1\n")[0]!)).toEqual({ cpuNs: 5, vcpus: 1, memKiB: 1, rssKiB: null });
    // The test driver prints none of them: the sampler then asks the binding.
    expect(cpuFromDomStats(test!)).toBeNull();
  });

  it('refuses partial or malformed figures rather than guess', () => {
    for (const text of [
      "Domain: 'a'\n  cpu.time=5\n  vcpu.current=1\n",
      "Domain: 'a'\n  cpu.time=-5\n  vcpu.current=1\n  balloon.current=1\n",
      "Domain: 'a'\n  cpu.time=5\n  vcpu.current=0\n  balloon.current=1\n",
      "Domain: 'a'\n  cpu.time=5e3\n  vcpu.current=1\n  balloon.current=1\n",
    ]) expect(cpuFromDomStats(parseDomStats(text)[0]!)).toBeNull();
  });
});
