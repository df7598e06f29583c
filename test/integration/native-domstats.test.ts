import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeDomStats, NativeDomStats, STATS_GROUP } from '../../src/adapters/libvirt/native-domstats.js';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { LibvirtSampler } from '../../stats-daemon/libvirt-sampler.js';
import { makeIoSource } from '../../stats-daemon/make-sampler.js';
import { makeFixture } from '../helpers/fixture.js';
import { startHungLibvirtd, type HungLibvirtd } from '../helpers/hung-libvirtd.js';

/**
 * The statistics addon (native/domstats.c, built by scripts/build-native.sh, which
 * install-pkgs runs) against libvirt's test driver and against a libvirtd that never answers.
 * Counters themselves need a real libvirtd: e2e/io-stats.test.ts.
 */
const { addon, reason } = loadNativeDomStats();
if (!addon) throw new Error(`the statistics addon is not built, so these tests cannot run: ${reason}`);

let hung: HungLibvirtd;

beforeAll(async () => {
  hung = await startHungLibvirtd();
});

afterAll(() => hung.close());

describe('the statistics addon', () => {
  it('lists every running VM with its name, UUID and ID, and none that is shut off', async () => {
    const f = makeFixture([
      { name: 'kfn-a', uuid: '11111111-2222-3333-4444-555555555555' },
      { name: 'kfn-b', state: 'paused' },
      { name: 'kfn-off', state: 'shut-off' },
      { name: '4', uuid: '66666666-2222-3333-4444-555555555555' },
    ]);
    const stats = new NativeDomStats(addon, f.uri, 5_000, STATS_GROUP.state | STATS_GROUP.cpuTotal | STATS_GROUP.block);
    try {
      const first = await stats.read();
      const again = await stats.read();
      for (const records of [first, again]) {
        expect(records.map((r) => r.name).sort()).toEqual(['4', 'kfn-a', 'kfn-b']);
        expect(records.find((r) => r.name === 'kfn-a')!.uuid).toBe('11111111-2222-3333-4444-555555555555');
        expect(records.find((r) => r.name === '4')!.uuid).toBe('66666666-2222-3333-4444-555555555555');
        for (const r of records) expect(r.id).toBeGreaterThan(0);
        // The test driver reports the state group: running 1, paused 3.
        expect(records.find((r) => r.name === 'kfn-b')!.values.get('state.state')).toBe(3);
        expect(records.find((r) => r.name === 'kfn-a')!.values.get('state.state')).toBe(1);
        expect(records.find((r) => r.name === 'kfn-a')!.values.get('no.such.key')).toBeUndefined();
      }
    } finally {
      stats.close();
      rmSync(f.dir, { recursive: true, force: true });
    }
  });

  it('is the daemon’s I/O source where it is built; on the test driver CPU and RAM still come from the binding', async () => {
    const f = makeFixture(Array.from({ length: 5 }, (_, i) => ({ name: `kfn-s${i}`, vcpus: 2, memoryMiB: 512 })));
    const source = makeIoSource(f.uri, 5_000);
    expect(source.kind).toBe('native');
    const sampler = new LibvirtSampler(new LibvirtConnection(f.uri), null, source);
    try {
      const samples = await sampler.sample(Date.now());
      expect(samples.map((s) => s.name).sort()).toEqual(['kfn-s0', 'kfn-s1', 'kfn-s2', 'kfn-s3', 'kfn-s4']);
      // No counters on the test driver: the VMs are there, their I/O is a first sighting (no rate yet).
      expect(sampler.ioError).toBeNull();
      expect(sampler.infoCalls).toBe(5);
      for (const s of samples) {
        expect(s.ramMiB).toBe(512);
        expect(s.ramKind).toBe('assigned');
        expect(s.io).toBeNull();
      }
      const next = await sampler.sample(Date.now() + 1000);
      for (const s of next) expect(s.io).toEqual(expect.objectContaining({ diskWrBytes: 0, netInBytes: 0 }));
    } finally {
      await sampler.close();
      rmSync(f.dir, { recursive: true, force: true });
    }
  });

  it('says which URI it cannot open, and refuses what is not a connection', async () => {
    const stats = new NativeDomStats(addon, 'test:///nonexistent/kf-missing.xml', 5_000);
    await expect(stats.read()).rejects.toThrow(/^Cannot read statistics from libvirt at test:\/\/\/nonexistent\/kf-missing\.xml: virConnectOpenReadOnly: .+/);
    expect(() => addon.allDomainStats({}, 1, 1)).toThrow(/expected a connection from open\(\)/);
    expect(() => addon.close({})).toThrow(/expected a connection from open\(\)/);
  });

  it('times out on a libvirtd that does not answer, starts no second call meanwhile, and recovers when the call returns', async () => {
    const stats = new NativeDomStats(addon, hung.uri, 800);
    const t0 = Date.now();
    await expect(stats.read()).rejects.toThrow(/^libvirt does not answer: opening the connection got no reply in 1 s\.$/);
    expect(Date.now() - t0).toBeLessThan(4_000);
    const accepted = hung.sockets.length;
    await expect(stats.read()).rejects.toThrow(/^libvirt does not answer: the last statistics call to .* has not returned yet\.$/);
    expect(hung.sockets.length).toBe(accepted); // no new connection attempt while the first is stuck
    // The stuck open gets its EOF; its thread returns, and the next read connects afresh
    // (this libvirtd still never answers, so that attempt times out in its turn).
    hung.hangUp();
    const t1 = Date.now();
    let e: Error | null;
    for (;;) {
      e = await stats.read().then(() => null, (err: Error) => err);
      expect(e).not.toBeNull();
      if (!/has not returned yet/.test(e!.message)) break;
      expect(Date.now() - t1).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(e!.message).toMatch(/^libvirt does not answer: opening the connection got no reply in 1 s\.$/);
    expect(hung.sockets.length).toBe(1);
    stats.close();
  });
});
