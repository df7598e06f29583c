import { AppError } from '../errors.js';
import { vmStateFromLibvirt, type Vm } from '../domain/vm.js';
import { domainList, domainLookup, domainLookupByUuid, type DomainSnapshot } from '../adapters/libvirt/domain.js';
import { readDiskUsage } from '../adapters/host/disk-files.js';
import type { NodeContext } from './node-context.js';

const AUTOSTART_TTL_MS = 5_000;

/**
 * Reads the node's VMs into the product's Vm model. Autostart needs a virsh
 * process, so it is cached briefly and refreshed in the background: the page must
 * not pay a process spawn on every render.
 */
export class VmInventory {
  private autostart: { uuids: Set<string>; at: number } | null = null;
  private autostartRefresh: Promise<void> | null = null;

  constructor(private readonly ctx: NodeContext) {}

  async list(): Promise<Vm[]> {
    const snaps = await domainList(this.ctx.conn);
    const autostart = await this.autostartUuids();
    const vms = await Promise.all(snaps.map((s) => this.toVm(s, autostart)));
    return vms.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Exact name match: the VM it answers with carries the UUID every action then uses. */
  async find(name: string): Promise<Vm | null> {
    const s = await domainLookup(this.ctx.conn, name);
    return s ? this.toVm(s, await this.autostartUuids()) : null;
  }

  async findByUuid(uuid: string): Promise<Vm | null> {
    const s = await domainLookupByUuid(this.ctx.conn, uuid);
    return s ? this.toVm(s, await this.autostartUuids()) : null;
  }

  async get(name: string): Promise<Vm> {
    const vm = await this.find(name);
    if (!vm) throw new AppError('VM_NOT_FOUND', `VM ${name} does not exist on node ${this.ctx.config.nodeName}.`);
    return vm;
  }

  invalidate(): void {
    this.autostart = null;
  }

  private async autostartUuids(): Promise<Set<string> | null> {
    const fresh = this.autostart && Date.now() - this.autostart.at < AUTOSTART_TTL_MS;
    if (!fresh && !this.autostartRefresh) {
      this.autostartRefresh = this.ctx.virsh
        .autostartUuids()
        .then((uuids) => {
          this.autostart = { uuids, at: Date.now() };
        })
        .catch((e) => this.ctx.log.warn('autostart list failed', { error: String(e) }))
        .finally(() => {
          this.autostartRefresh = null;
        });
    }
    // First call waits for the answer; later ones use the stale set while it refreshes.
    if (!this.autostart && this.autostartRefresh) await this.autostartRefresh;
    return this.autostart?.uuids ?? null;
  }

  private async toVm(s: DomainSnapshot, autostart: Set<string> | null): Promise<Vm> {
    const d = s.description;
    const disks = await Promise.all(
      d.disks.map(async (disk) => {
        const usage = disk.type === 'file' && disk.path ? await readDiskUsage(disk.path, disk.format) : { virtualBytes: null, allocatedBytes: null };
        return { target: disk.target, device: disk.device, type: disk.type, path: disk.path, format: disk.format, readonly: disk.readonly, ...usage };
      }),
    );
    return {
      name: d.name,
      uuid: d.uuid,
      state: vmStateFromLibvirt(s.stateCode),
      vcpus: s.vcpus || d.vcpus,
      memoryMiB: Math.round(s.memoryKiB / 1024),
      maxMemoryMiB: Math.round(s.maxMemoryKiB / 1024),
      vncPort: d.vnc?.port ?? null,
      vncListen: d.vnc?.listen ?? null,
      disks,
      autostart: autostart ? autostart.has(d.uuid.toLowerCase()) : null,
      osVariant: d.osVariant,
    };
  }
}
