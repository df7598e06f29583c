import type { CommandRunner } from '../process/run-command.js';
import { AppError } from '../../errors.js';

export interface ImageInfo {
  format: string;
  virtualBytes: number;
  actualBytes: number | null;
  backingFile: string | null;
}

/** Sparse by construction: qcow2 allocates on write, and preallocation is off. */
export function buildCreateArgs(path: string, sizeBytes: number, format: 'qcow2' | 'raw' = 'qcow2'): string[] {
  const opts = format === 'qcow2' ? ['-o', 'preallocation=off'] : [];
  return ['create', '-q', '-f', format, ...opts, path, String(sizeBytes)];
}

export function buildInfoArgs(path: string): string[] {
  // -U: read the header even while a running VM holds the image lock.
  return ['info', '-U', '--output=json', path];
}

export class QemuImg {
  constructor(private readonly run: CommandRunner) {}

  async create(path: string, sizeBytes: number, format: 'qcow2' | 'raw' = 'qcow2'): Promise<void> {
    await this.run('qemu-img', buildCreateArgs(path, sizeBytes, format), { timeoutMs: 60_000, failureMessage: `Could not create the disk image ${path}.` });
  }

  async info(path: string): Promise<ImageInfo> {
    const r = await this.run('qemu-img', buildInfoArgs(path), { timeoutMs: 30_000, failureMessage: `Could not read the disk image ${path}.` });
    try {
      const j = JSON.parse(r.stdout) as { format: string; 'virtual-size': number; 'actual-size'?: number; 'backing-filename'?: string };
      return { format: j.format, virtualBytes: j['virtual-size'], actualBytes: j['actual-size'] ?? null, backingFile: j['backing-filename'] ?? null };
    } catch (e) {
      throw new AppError('COMMAND_FAILED', `qemu-img gave unreadable information about ${path}.`, { detail: r.stdout.slice(0, 2000), cause: e });
    }
  }
}
