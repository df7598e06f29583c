import { open, realpath, stat, statfs } from 'node:fs/promises';
import { sep } from 'node:path';

export interface DiskUsage {
  virtualBytes: number | null;
  allocatedBytes: number | null;
}

const QCOW2_MAGIC = 0x514649fb;

/**
 * Sizes of a local disk image without spawning qemu-img (the VM list reads every
 * disk on every render): allocation from st_blocks, virtual size from the qcow2
 * header (big-endian u64 at offset 24) or the file size for raw images.
 */
export async function readDiskUsage(path: string, format: string | null): Promise<DiskUsage> {
  try {
    const st = await stat(path);
    if (!st.isFile()) return { virtualBytes: null, allocatedBytes: null };
    const allocatedBytes = st.blocks * 512;
    if (format === 'qcow2' || format === null) {
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(32);
        const { bytesRead } = await fh.read(buf, 0, 32, 0);
        if (bytesRead === 32 && buf.readUInt32BE(0) === QCOW2_MAGIC) {
          return { virtualBytes: Number(buf.readBigUInt64BE(24)), allocatedBytes };
        }
      } finally {
        await fh.close();
      }
      if (format === 'qcow2') return { virtualBytes: null, allocatedBytes };
    }
    return { virtualBytes: st.size, allocatedBytes };
  } catch {
    return { virtualBytes: null, allocatedBytes: null };
  }
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Resolves `name` (relative to `dir`, or absolute) after symlinks and returns the real
 * path only if it is a regular file inside `dir`; anything else is null.
 */
export async function resolveFileInside(dir: string, name: string): Promise<string | null> {
  try {
    const realDir = await realpath(dir);
    const candidate = name.startsWith('/') ? name : `${realDir}${sep}${name}`;
    const real = await realpath(candidate);
    if (!real.startsWith(realDir + sep)) return null;
    const st = await stat(real);
    return st.isFile() ? real : null;
  } catch {
    return null;
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
