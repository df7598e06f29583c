import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, badInput } from '../errors.js';
import { parseCreateVmRequest, type CreateVmRequest } from '../domain/vm-spec.js';
import type { Job } from '../domain/job.js';
import { domainCreateByUuid, domainDefineXml, domainList, domainLookup, domainUndefineByUuid, type DomainRef } from '../adapters/libvirt/domain.js';
import { pathExists, resolveFileInside } from '../adapters/host/disk-files.js';
import { isTcpPortFree } from '../adapters/host/ports.js';
import type { VirtInstallDisk, VirtInstallSpec, VmNetworkChoice } from '../adapters/virt-install/virt-install.js';
import type { NodeContext } from './node-context.js';
import type { HostFacts } from './host-facts.js';
import type { VmInventory } from './vm-inventory.js';
import type { WorkRefusal } from './local-node.js';

export const VNC_LISTEN_DEFAULT = '127.0.0.1';

/** A create request whose files and ports have been checked against this host. */
interface ResolvedCreate {
  req: CreateVmRequest;
  newDiskPath: string | null;
  disks: VirtInstallDisk[];
}

export class VmCreator {
  constructor(private readonly ctx: NodeContext, private readonly facts: HostFacts, private readonly inventory: VmInventory, private readonly refusal: WorkRefusal = () => null) {}

  /** Validates everything up front (400/409 change nothing), then runs the creation as a job. */
  async request(body: Record<string, unknown>, user: string | null): Promise<Job> {
    const req = parseCreateVmRequest(body, await this.facts.limits());
    const refused = this.refusal('create');
    if (refused) throw new AppError('NODE_IN_MAINTENANCE', refused);
    const resolved = await this.resolve(req);
    const { name } = req;
    return this.ctx.jobs.submit(
      { kind: 'create', node: this.ctx.config.nodeName, vm: name, user, message: `Creating VM ${name}…`, params: { ...req, imagePath: req.source.kind === 'import' ? resolved.disks[0]?.path ?? null : null, newDiskPath: resolved.newDiskPath } },
      async (job) => {
        // Set once libvirt has defined it: starting and rolling back go by its UUID.
        let defined: DomainRef | null = null;
        try {
          if (resolved.newDiskPath) {
            job.progress({ step: 'disk' }, `Creating a ${req.diskGiB} GiB disk for ${name}…`);
            await this.ctx.qemuImg.create(resolved.newDiskPath, req.diskGiB! * 1024 ** 3);
            job.record({ createdDisk: resolved.newDiskPath });
          }
          job.progress({ step: 'define' }, `Defining VM ${name}…`);
          const xml = await this.ctx.virtInstall.printXml(await this.installSpec(req, resolved.disks));
          defined = await domainDefineXml(this.ctx.conn, xml, name);
          job.record({ uuid: defined.uuid });
          if (req.start) {
            job.progress({ step: 'start' }, `Starting VM ${name}…`);
            await domainCreateByUuid(this.ctx.conn, defined);
          }
          this.inventory.invalidate();
          return {
            message: req.start ? `VM ${name} created and started.` : `VM ${name} created.`,
            result: { disk: resolved.newDiskPath ?? resolved.disks[0]?.path ?? null },
          };
        } catch (e) {
          await this.rollback(defined, resolved.newDiskPath);
          throw e;
        }
      },
    );
  }

  /** Leaves the node as it was: nothing defined, no disk this job made. */
  private async rollback(defined: DomainRef | null, newDisk: string | null): Promise<void> {
    if (defined) {
      await domainUndefineByUuid(this.ctx.conn, defined).catch((e) => this.ctx.log.warn('rollback undefine failed', { vm: defined.name, uuid: defined.uuid, error: String(e) }));
    }
    if (newDisk) await unlink(newDisk).catch(() => undefined);
  }

  private async resolve(req: CreateVmRequest): Promise<ResolvedCreate> {
    const { config } = this.ctx;
    if (await domainLookup(this.ctx.conn, req.name)) {
      throw new AppError('NAME_TAKEN', `A VM named ${req.name} already exists on node ${config.nodeName}; pick another name.`, { field: 'name' });
    }
    const existing = await domainList(this.ctx.conn);
    const disks: VirtInstallDisk[] = [];
    let newDiskPath: string | null = null;

    if (req.source.kind === 'import') {
      const image = await resolveFileInside(config.imageDir, req.source.image);
      if (!image) throw badInput('image', `The disk image must be a file inside ${config.imageDir}.`);
      const user = existing.find((s) => s.description.disks.some((d) => d.path === image));
      if (user) throw new AppError('VM_STATE_CONFLICT', `The image ${image} is already used by VM ${user.description.name}.`, { field: 'image' });
      // A create still running has not defined its VM yet: its claim on the image is in the job row.
      const claim = this.ctx.jobs.running().find((j) => j.kind === 'create' && j.params.imagePath === image);
      if (claim) throw new AppError('VM_STATE_CONFLICT', `The image ${image} is being imported by job #${claim.id} for VM ${claim.vm}.`, { field: 'image' });
      const info = await this.ctx.qemuImg.info(image);
      disks.push({ path: image, device: 'disk', format: info.format });
    } else {
      newDiskPath = join(config.imageDir, `${req.name}.qcow2`);
      if (await pathExists(newDiskPath)) {
        throw new AppError('NAME_TAKEN', `A disk file ${newDiskPath} already exists; delete or rename it, or import it instead.`, { field: 'name' });
      }
      disks.push({ path: newDiskPath, device: 'disk', format: 'qcow2' });
    }
    if (req.source.kind === 'iso') {
      const iso = await resolveFileInside(config.isoDir, req.source.iso);
      if (!iso) throw badInput('iso', `The ISO must be a file inside ${config.isoDir}.`);
      disks.push({ path: iso, device: 'cdrom' });
    }

    if (req.vncPort !== 'auto') {
      const port = req.vncPort;
      const holder = existing.find((s) => s.description.vnc?.port === port);
      if (holder) throw badInput('vncPort', `VNC port ${port} is already assigned to VM ${holder.description.name}; pick another or use auto.`);
      if (!(await isTcpPortFree(port))) throw badInput('vncPort', `VNC port ${port} is in use by another program on this node; pick another or use auto.`);
    }
    return { req, newDiskPath, disks };
  }

  private async installSpec(req: CreateVmRequest, disks: VirtInstallDisk[]): Promise<VirtInstallSpec> {
    const { config } = this.ctx;
    return {
      connectUri: config.libvirtUri,
      name: req.name,
      vcpus: req.vcpus,
      memoryMiB: req.memoryMiB,
      osVariant: req.osVariant,
      virtType: config.virtType,
      disks,
      vncPort: req.vncPort,
      vncListen: VNC_LISTEN_DEFAULT,
      network: await this.network(),
      serialLogPath: config.serialLogDir ? join(config.serialLogDir, `${req.name}-serial.log`) : null,
    };
  }

  private async network(): Promise<VmNetworkChoice> {
    const v = this.ctx.config.vmNetwork;
    if (v === 'none') return { kind: 'none' };
    if (v === 'auto') return (await this.ctx.virsh.isNetworkActive('default')) ? { kind: 'network', name: 'default' } : { kind: 'none' };
    const [kind, name] = v.split(':') as ['network' | 'bridge', string];
    return { kind, name };
  }
}
