import { unlink } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { requireVmName } from '../domain/names.js';
import { parseBool, requireChoice, requireInt } from '../domain/numbers.js';
import { isActive, VM_STATE_LABELS, vmStateFromLibvirt, type Vm } from '../domain/vm.js';
import type { Job } from '../domain/job.js';
import { requireUuid } from '../domain/uuid.js';
import {
  domainCreateByUuid, domainDestroyByUuid, domainList, domainLookupByUuid, domainShutdownByUuid, domainUndefineByUuid, type DomainRef,
} from '../adapters/libvirt/domain.js';
import type { NodeContext } from './node-context.js';
import type { VmInventory } from './vm-inventory.js';
import type { WorkRefusal } from './local-node.js';

const MAX_SHUTDOWN_TIMEOUT_SEC = 3600;
const POLL_MS = 1000;

/**
 * Start, shut down, force off and delete: preconditions checked here, not decoded from
 * libvirt errors. The name in the request is resolved to the VM once, by exact name;
 * from then on everything (binding calls, virsh, re-reads) goes by that VM's UUID.
 */
export class VmPower {
  constructor(private readonly ctx: NodeContext, private readonly inventory: VmInventory, private readonly refusal: WorkRefusal = () => null) {}

  async start(rawName: unknown, user: string | null, body: Record<string, unknown> = {}): Promise<Job> {
    const vm = await this.resolve(rawName, body);
    if (isActive(vm.state)) throw conflict(vm, 'is already running');
    const refused = this.refusal('start');
    if (refused) throw new AppError('NODE_IN_MAINTENANCE', refused);
    return this.submit('start', vm, user, {}, `Starting ${vm.name}…`, async () => {
      await domainCreateByUuid(this.ctx.conn, vm);
      return { message: `VM ${vm.name} started.` };
    });
  }

  async shutdown(rawName: unknown, body: Record<string, unknown>, user: string | null): Promise<Job> {
    const timeoutSec = body.timeoutSec === undefined || body.timeoutSec === ''
      ? this.ctx.config.shutdownTimeoutSec
      : requireInt('timeoutSec', body.timeoutSec, 1, MAX_SHUTDOWN_TIMEOUT_SEC, 'Shutdown timeout (s)');
    const force = parseBool('force', body.force, false);
    const vm = await this.resolve(rawName, body);
    if (!isActive(vm.state)) throw conflict(vm, 'is not running');
    return this.submit('shutdown', vm, user, { timeoutSec, force }, `Shutting down ${vm.name} (up to ${timeoutSec} s)…`, async (job) => {
      await domainShutdownByUuid(this.ctx.conn, vm);
      const deadline = Date.now() + timeoutSec * 1000;
      while (Date.now() < deadline) {
        if (!(await this.stillActive(vm))) return { message: `VM ${vm.name} shut down.` };
        job.progress({ waitedSec: Math.round(timeoutSec - (deadline - Date.now()) / 1000), timeoutSec });
        await this.ctx.sleep(POLL_MS);
      }
      if (!(await this.stillActive(vm))) return { message: `VM ${vm.name} shut down.` };
      if (!force) {
        throw new AppError('VM_STATE_CONFLICT', `VM ${vm.name} did not shut down within ${timeoutSec} s; the guest may ignore ACPI — use Force off.`);
      }
      await domainDestroyByUuid(this.ctx.conn, vm);
      return { message: `VM ${vm.name} did not shut down within ${timeoutSec} s and was forced off.`, result: { forced: true } };
    });
  }

  async poweroff(rawName: unknown, user: string | null, body: Record<string, unknown> = {}): Promise<Job> {
    const vm = await this.resolve(rawName, body);
    if (!isActive(vm.state)) throw conflict(vm, 'is not running');
    return this.submit('poweroff', vm, user, {}, `Forcing off ${vm.name}…`, async () => {
      await domainDestroyByUuid(this.ctx.conn, vm);
      return { message: `VM ${vm.name} forced off.` };
    });
  }

  async delete(rawName: unknown, query: Record<string, unknown>, user: string | null): Promise<Job> {
    const disks = requireChoice('disks', query.disks, ['keep', 'delete'] as const, 'keep');
    const force = parseBool('force', query.force, false);
    const vm = await this.resolve(rawName, query);
    if (isActive(vm.state) && !force) throw conflict(vm, 'is running; shut it down first, or delete with force');
    return this.submit('delete', vm, user, { disks, force }, `Deleting ${vm.name}…`, async (job) => {
      if (await this.stillActive(vm)) await domainDestroyByUuid(this.ctx.conn, vm);
      await this.undefine(vm);
      job.record({ undefined: true });
      if (disks === 'keep') {
        const kept = diskFiles(vm);
        return { message: `VM ${vm.name} deleted; its disks were kept.`, result: { keptDisks: kept } };
      }
      const { deleted, kept } = await this.deleteDisks(vm);
      const keptNote = kept.length ? ` Kept ${kept.map((k) => `${k.path} (${k.why})`).join(', ')}.` : '';
      return { message: `VM ${vm.name} deleted with ${deleted.length} disk(s).${keptNote}`, result: { deletedDisks: deleted, keptDisks: kept } };
    });
  }

  private submit(kind: Job['kind'], vm: Vm, user: string | null, params: Record<string, unknown>, message: string,
    work: Parameters<NodeContext['jobs']['submit']>[1]): Job {
    // The UUID in the job lets a restarted manager settle it against this very VM.
    return this.ctx.jobs.submit({ kind, node: this.ctx.config.nodeName, vm: vm.name, user, params: { ...params, uuid: vm.uuid }, message }, async (job) => {
      try {
        return await work(job);
      } finally {
        this.inventory.invalidate();
      }
    });
  }

  /** Name → the VM, exactly and once. A `uuid` sent with the request (the page sends the one it showed) must still be its. */
  private async resolve(rawName: unknown, params: Record<string, unknown>): Promise<Vm> {
    const vm = await this.inventory.get(requireVmName(rawName));
    if (params.uuid !== undefined && params.uuid !== '' && requireUuid(params.uuid) !== vm.uuid.toLowerCase()) {
      throw new AppError('VM_STATE_CONFLICT', `VM ${vm.name} is not the VM you saw: it was deleted and created again since; reload the page and check it.`, { field: 'uuid' });
    }
    return vm;
  }

  private async stillActive(vm: DomainRef): Promise<boolean> {
    const s = await domainLookupByUuid(this.ctx.conn, vm.uuid);
    return s !== null && isActive(vmStateFromLibvirt(s.stateCode));
  }

  /**
   * The binding's undefine takes no flags; when the domain survives it (NVRAM, snapshots),
   * virsh's flagged undefine does — by UUID, and only while that UUID still exists, since
   * virsh falls back to a name lookup when no domain has the UUID it was given.
   */
  private async undefine(vm: DomainRef): Promise<void> {
    await domainUndefineByUuid(this.ctx.conn, vm).catch(() => undefined);
    if (!(await domainLookupByUuid(this.ctx.conn, vm.uuid))) return;
    await this.ctx.virsh.undefine(vm);
    if (await domainLookupByUuid(this.ctx.conn, vm.uuid)) {
      throw new AppError('LIBVIRT_FAILED', `VM ${vm.name} could not be removed from libvirt; its disks were left untouched.`);
    }
  }

  /** Deletes only disk files no other VM still uses; CD-ROM media are never deleted. */
  private async deleteDisks(vm: Vm): Promise<{ deleted: string[]; kept: { path: string; why: string }[] }> {
    const others = await domainList(this.ctx.conn);
    const deleted: string[] = [];
    const kept: { path: string; why: string }[] = [];
    for (const path of diskFiles(vm)) {
      const user = others.find((o) => o.description.disks.some((d) => d.path === path));
      if (user) {
        kept.push({ path, why: `used by VM ${user.description.name}` });
        continue;
      }
      try {
        await unlink(path);
        deleted.push(path);
      } catch (e) {
        kept.push({ path, why: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'already missing' : `could not delete: ${(e as Error).message}` });
      }
    }
    return { deleted, kept };
  }
}

function diskFiles(vm: Vm): string[] {
  // Only regular files: a block device's node must never be unlinked.
  return vm.disks.filter((d) => d.device === 'disk' && d.type === 'file' && d.path !== null).map((d) => d.path!);
}

function conflict(vm: Vm, what: string): AppError {
  return new AppError('VM_STATE_CONFLICT', `VM ${vm.name} ${what} (state: ${VM_STATE_LABELS[vm.state]}).`);
}
