import { describe, expect, it } from 'vitest';
import { guestRamRegion, nonZeroRamShare } from '../../src/adapters/host/ram-sample.js';

const MiB = 2 ** 20;

describe('the non-zero share of a process\'s RAM, sampled through /proc/<pid>/mem', () => {
  it('finds the largest private anonymous mapping of about the RAM size', () => {
    const maps = [
      '55d0c0000000-55d0c0200000 r-xp 00000000 08:01 1234 /usr/bin/qemu-system-x86_64',
      '7f0000000000-7f0008000000 rw-p 00000000 00:00 0 ', // 128 MiB: the guest's RAM
      '7f1000000000-7f1000400000 rw-p 00000000 00:00 0 ', // 4 MiB
      '7f2000000000-7f2008000000 rw-s 00000000 00:01 77 /memfd:shared (deleted)', // shared: not it
      '7f3000000000-7f3010000000 rw-p 00000000 00:00 0 ', // 256 MiB: too big for 128
    ].join('\n');
    expect(guestRamRegion(maps, 128 * MiB)).toEqual({ start: 0x7f0000000000, end: 0x7f0008000000 });
    expect(guestRamRegion(maps, 1024 * MiB)).toBeNull();
  });

  it('measures this process: a 64 MiB buffer a quarter written reads as about 25 % non-zero', () => {
    // Large ArrayBuffers get a mapping of their own; a quarter of its pages get a non-zero byte.
    const buf = new Uint8Array(new ArrayBuffer(64 * MiB));
    for (let p = 0; p < buf.length / 4096; p += 4) buf[p * 4096 + 100] = 7;
    const share = nonZeroRamShare(process.pid, 64 * MiB, 2048);
    expect(share).not.toBeNull();
    expect(share!).toBeGreaterThan(0.2);
    expect(share!).toBeLessThan(0.3);
    buf[0] = 0; // keep it alive until here
  });

  it('says nothing (null) for a process that does not exist', () => {
    expect(nonZeroRamShare(2 ** 30, 64 * MiB)).toBeNull();
  });
});
