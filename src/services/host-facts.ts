import { nodeGetInfo } from '../adapters/libvirt/domain.js';
import { freeBytes } from '../adapters/host/disk-files.js';
import { listFiles } from '../adapters/host/list-files.js';
import type { HostLimits } from '../domain/vm-spec.js';
import type { NodeContext } from './node-context.js';

export interface CreateOptions {
  limits: HostLimits;
  osVariants: string[];
  isos: string[];
  images: string[];
}

export const ISO_EXTENSIONS = ['.iso'] as const;
export const IMAGE_EXTENSIONS = ['.qcow2', '.img', '.raw'] as const;

/** Host facts that bound what a user may ask for; the OS list costs a process, so it is read once. */
export class HostFacts {
  private osVariants: Promise<string[]> | null = null;

  constructor(private readonly ctx: NodeContext) {}

  async limits(): Promise<HostLimits> {
    const [info, free, os] = await Promise.all([nodeGetInfo(this.ctx.conn), freeBytes(this.ctx.config.imageDir), this.osList()]);
    return { hostCpus: info.cpus, hostMemoryMiB: Math.floor(info.memoryKiB / 1024), freeDiskBytes: free, osVariants: new Set(os) };
  }

  osList(): Promise<string[]> {
    if (!this.osVariants) {
      this.osVariants = this.ctx.virtInstall.osVariants().catch((e) => {
        this.osVariants = null;
        this.ctx.log.warn('could not list OS variants', { error: String(e) });
        return ['generic'];
      });
    }
    return this.osVariants;
  }

  async createOptions(): Promise<CreateOptions> {
    const [limits, osVariants, isos, images] = await Promise.all([
      this.limits(),
      this.osList(),
      listFiles(this.ctx.config.isoDir, ISO_EXTENSIONS),
      listFiles(this.ctx.config.imageDir, IMAGE_EXTENSIONS),
    ]);
    return { limits, osVariants, isos, images };
  }
}
