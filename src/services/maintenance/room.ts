import { freeBytes } from '../../adapters/host/disk-files.js';
import type { NodeContext } from '../node-context.js';

export interface NodeRoom {
  /** free + cached + buffers, as libvirt reports them, minus maintenance.reservedMemoryMiB. */
  freeMemoryMiB: number;
  /** Before the reserve: what the node really has. */
  reportedFreeMemoryMiB: number;
  reservedMemoryMiB: number;
  freeDiskBytes: number;
}

/** What this node can give VMs moved here by another node's plan (the same sum pre-flight uses). */
export async function localRoom(ctx: NodeContext): Promise<NodeRoom> {
  const [mem, disk] = await Promise.all([
    ctx.run('virsh', ['-c', ctx.config.libvirtUri, 'nodememstats'], { timeoutMs: 15_000, failureMessage: `Could not read the memory of node ${ctx.config.nodeName}.` }),
    freeBytes(ctx.config.imageDir),
  ]);
  const kib = (k: string) => Number(new RegExp(`^${k}\\s*:\\s*(\\d+)`, 'm').exec(mem.stdout)?.[1] ?? 0);
  const reported = Math.floor((kib('free') + kib('cached') + kib('buffers')) / 1024);
  const reserved = ctx.config.maintenance.reservedMemoryMiB;
  return { freeMemoryMiB: Math.max(0, reported - reserved), reportedFreeMemoryMiB: reported, reservedMemoryMiB: reserved, freeDiskBytes: disk };
}
