import { freeBytes } from '../../adapters/host/disk-files.js';
import type { NodeContext } from '../node-context.js';

export interface NodeRoom {
  /** free + cached + buffers, as libvirt reports them, minus maintenance.reservedMemoryMiB, capped at offeredMemoryMiB. */
  freeMemoryMiB: number;
  /** Before the reserve: what the node really has. */
  reportedFreeMemoryMiB: number;
  reservedMemoryMiB: number;
  /** The cap from the config (null: none). */
  offeredMemoryMiB: number | null;
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
  const { reservedMemoryMiB: reserved, offeredMemoryMiB: cap } = ctx.config.maintenance;
  const free = Math.max(0, reported - reserved);
  return { freeMemoryMiB: cap > 0 ? Math.min(cap, free) : free, reportedFreeMemoryMiB: reported, reservedMemoryMiB: reserved, offeredMemoryMiB: cap > 0 ? cap : null, freeDiskBytes: disk };
}
