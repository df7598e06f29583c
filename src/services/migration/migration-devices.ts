import type { DomainDevices } from '../../domain/domain-devices.js';
import { parseDomainDevices } from '../../adapters/libvirt/domain-devices-xml.js';
import type { DomainDescription } from '../../adapters/libvirt/domain-xml.js';
import type { NodeContext } from '../node-context.js';
import type { MigrationMode } from '../../domain/migration-plan/types.js';

/**
 * The devices a move must account for. Offline: the persistent definition. Live: the
 * running VM's, plus disks that exist only in its persistent definition (attached with
 * --config while it ran) — `--persistent` carries that definition to the destination,
 * so those files must be there too, though QEMU never mirrors them.
 */
export async function migrationDevices(ctx: NodeContext, uuid: string, live: DomainDescription, mode: MigrationMode): Promise<DomainDevices> {
  const r = await ctx.run('virsh', ['-c', ctx.config.libvirtUri, 'dumpxml', '--inactive', '--domain', uuid], { timeoutMs: 20_000, failureMessage: 'Could not read the VM\'s persistent definition.' });
  const persistent = parseDomainDevices(r.stdout);
  if (mode === 'offline') return persistent;
  const running = live.devices;
  const inUse = new Set(running.disks.map((d) => d.path).filter(Boolean));
  const targets = new Set(running.disks.map((d) => d.target));
  const configOnly = persistent.disks
    .filter((d) => d.device === 'disk' && d.path && !inUse.has(d.path) && !targets.has(d.target))
    .map((d) => ({ ...d, configOnly: true }));
  return { ...running, disks: [...running.disks, ...configOnly] };
}
