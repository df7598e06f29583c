import { describe, expect, it } from 'vitest';
import { parseVirtTopNumber, parseVirtTopOutput, VirtTopStreamParser } from '../../src/domain/stats/virt-top.js';
import { domStatsRam, parseDomStats } from '../../src/domain/stats/domstats.js';
import { cpuPercent, CpuDeltas } from '../../src/domain/stats/cpu.js';
import { VirtTopSampler } from '../../stats-daemon/virt-top-sampler.js';

// Verbatim from the thesis (quoted in the product brief).
const BRIEF_SAMPLE = `virt-top time  11:15:02 Host node1.srvlan.local x86_64 8/8CPU 2493MHz 15946MB
   ID S RDRQ WRRQ RXBY TXBY %CPU %MEM   TIME    NAME
   40 R    0    6 2104 1300  1.0 12.0  32:18:02 SQL1-DEV2
   42 R    0   11 6304 5115  1.0  3.0  39:39:52 NFS1-DEV2
   45 R    0   21  48K 197K 11.7  6.0 144:11:34 NIS1-DEV2
`;

const frame = (time: string, rows: string) => `virt-top time  ${time} Host node1.srvlan.local x86_64 8/8CPU 2493MHz 15946MB
   ID S RDRQ WRRQ RXBY TXBY %CPU %MEM   TIME    NAME
${rows}`;

describe('virt-top stream parser', () => {
  it('reads the brief\'s sample: header, three domains, K suffixes', () => {
    const [f, ...rest] = parseVirtTopOutput(BRIEF_SAMPLE);
    expect(rest).toHaveLength(0);
    expect(f).toMatchObject({ time: '11:15:02', host: 'node1.srvlan.local', cpusActive: 8, cpusTotal: 8, mhz: 2493, hostMemMB: 15946 });
    expect(f!.domains.map((d) => d.name)).toEqual(['SQL1-DEV2', 'NFS1-DEV2', 'NIS1-DEV2']);
    expect(f!.domains[2]).toEqual({ id: 45, state: 'R', rdrq: 0, wrrq: 21, rxby: 48 * 1024, txby: 197 * 1024, cpuPct: 11.7, memPct: 6, time: '144:11:34', name: 'NIS1-DEV2' });
  });

  it('splits a stream into frames, with M/G suffixes, summary lines, inactive rows and names with spaces', () => {
    const text = [
      frame('11:15:02', '   40 R    0    6 2104 1300  0.0 12.0  32:18:02 SQL1-DEV2\n'),
      '3 domains, 2 active, 2 running, 0 sleeping, 0 paused, 1 inactive D:0 O:0 X:0\nCPU: 1.2%  Mem: 2048 MB (2048 MB by guests)\n\n',
      frame('11:15:07', '   40 R    0    6 1.5M 2.0G 55.5 12.0  32:18:07 SQL1-DEV2\n    -                                      old vm\n   41 R    0    0    0    0  3.25 1.0  0:00:05 web server 1\n'),
    ].join('');
    const frames = parseVirtTopOutput(text);
    expect(frames.map((f) => f.time)).toEqual(['11:15:02', '11:15:07']);
    expect(frames[1]!.domains).toHaveLength(2);
    expect(frames[1]!.domains[0]).toMatchObject({ rxby: 1.5 * 1024 ** 2, txby: 2 * 1024 ** 3, cpuPct: 55.5 });
    expect(frames[1]!.domains[1]).toMatchObject({ id: 41, name: 'web server 1', cpuPct: 3.25 });
  });

  it('emits a frame only when the next begins, however the chunks are cut', () => {
    const text = BRIEF_SAMPLE + frame('11:15:07', '   40 R    0    6 2104 1300  7.0 12.0  32:18:07 SQL1-DEV2\n');
    const p = new VirtTopStreamParser();
    const got = [];
    for (let i = 0; i < text.length; i += 7) got.push(...p.push(text.slice(i, i + 7)));
    expect(got.map((f) => f.time)).toEqual(['11:15:02']);
    expect(p.end().map((f) => f.domains[0]!.cpuPct)).toEqual([7]);
  });

  it('accepts batch headers ("virt-top 11:15:02 - x86_64 …")', () => {
    const f = parseVirtTopOutput(BRIEF_SAMPLE.replace('virt-top time  11:15:02 Host node1.srvlan.local', 'virt-top 11:15:02 -'));
    expect(f[0]).toMatchObject({ host: null, hostMemMB: 15946 });
    expect(f[0]!.domains).toHaveLength(3);
  });

  it('refuses garbage numbers instead of guessing', () => {
    expect(parseVirtTopNumber('48K')).toBe(49152);
    expect(() => parseVirtTopNumber('4x8')).toThrow(/not a number/);
  });

  it('the sampler drops virt-top\'s first frame (always 0 % CPU) and converts %MEM to MiB', async () => {
    const s = new VirtTopSampler(() => ({ stop() {}, exited: new Promise(() => {}) }), 'qemu:///system', 5);
    s.feed(BRIEF_SAMPLE);
    s.feed(frame('11:15:07', '   45 R    0   21  48K 197K 11.7  6.0 144:11:39 NIS1-DEV2\n'));
    expect(await s.sample(0)).toEqual([]); // first frame complete, second still open
    s.feed(frame('11:15:12', ''));
    const got = await s.sample(12_000);
    expect(got).toEqual([{ name: 'NIS1-DEV2', uuid: null, ts: 12, cpuPct: 11.7, ramMiB: 0.06 * 15946, ramKind: 'virt-top', io: null }]);
  });
});

describe('virsh domstats --raw parser', () => {
  const text = `Domain: 'kfst-a'
  state.state=1
  cpu.time=5000000000
  balloon.current=262144
  balloon.maximum=262144
  balloon.rss=120000
  vcpu.current=2

Domain: 'it''s'
  state.state=1
  cpu.time=10
  balloon.current=131072
  balloon.available=120000
  balloon.unused=80000
  balloon.disk_caches=10000
`;
  it('reads blocks of key=value per domain', () => {
    const d = parseDomStats(text);
    expect(d.map((x) => x.name)).toEqual(['kfst-a', "it''s"]);
    expect(d[0]!.values.get('cpu.time')).toBe('5000000000');
  });

  it('labels RAM honestly: guest-reported used, else QEMU RSS, else only the assigned size', () => {
    const [a, b] = parseDomStats(text);
    expect(domStatsRam(b!.values)).toEqual({ kib: 30000, kind: 'balloon-used' });
    expect(domStatsRam(a!.values)).toEqual({ kib: 120000, kind: 'rss' });
    expect(domStatsRam(new Map([['balloon.current', '262144']]))).toEqual({ kib: 262144, kind: 'assigned' });
  });
});

describe('CPU % from cpu-time deltas', () => {
  it('is per vCPU and clamped to 0–100', () => {
    expect(cpuPercent(0, 2.5e9, 5000, 1)).toBe(50);
    expect(cpuPercent(0, 2.5e9, 5000, 2)).toBe(25);
    expect(cpuPercent(0, 9e9, 5000, 1)).toBe(100);
    expect(cpuPercent(5e9, 1e9, 5000, 1)).toBeNull(); // VM restarted: counter went back
    expect(cpuPercent(0, 1, 0, 1)).toBeNull();
  });

  it('needs a previous reading, and forgets VMs that went away', () => {
    const d = new CpuDeltas();
    expect(d.next('a', 1e9, 0, 1)).toBeNull();
    expect(d.next('a', 2e9, 2000, 1)).toBe(50);
    d.retain(new Set());
    expect(d.next('a', 3e9, 4000, 1)).toBeNull();
  });
});
