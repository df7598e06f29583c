import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { guestRamRegion, nonZeroRamShare } from '../../src/adapters/host/ram-sample.js';

const MAPPER = [
  'import ctypes, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'libc.mmap.restype = ctypes.c_void_p',
  'libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]',
  'size = 64 << 20',
  // PROT_READ|PROT_WRITE; MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE
  'addr = libc.mmap(ctypes.c_void_p(0x3f0000000000), size, 3, 0x02 | 0x20 | 0x100000, -1, 0)',
  'if addr is None or addr == ctypes.c_void_p(-1).value: sys.exit("mmap failed")',
  'for page in range(0, size // 4096, 4): ctypes.memset(addr + page * 4096 + 100, 7, 1)',
  'print(hex(addr), flush=True)',
  'sys.stdin.read()',
].join('\n');

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

  it('measures a real process: a 64 MiB mapping a quarter written reads as about 25 % non-zero', async () => {
    // A small python process maps 64 MiB of private anonymous memory at an address of its own
    // (so no neighbour merges with it), writes one byte in every fourth page, and waits.
    const child = spawn('python3', ['-c', MAPPER], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
        child.once('exit', (code) => reject(new Error(`the mapper exited with ${code}`)));
      });
      expect(line).toBe('0x3f0000000000');
      const share = nonZeroRamShare(child.pid!, 64 * MiB, 2048);
      expect(share).not.toBeNull();
      expect(share!).toBeGreaterThan(0.2);
      expect(share!).toBeLessThan(0.3);
    } finally {
      child.stdin!.end();
      child.kill();
    }
  });

  it('says nothing (null) for a process that does not exist', () => {
    expect(nonZeroRamShare(2 ** 30, 64 * MiB)).toBeNull();
  });
});
