import type { DeviceDisk, DomainDevices } from '../domain-devices.js';
import type { DestFacts, FileFact, MigrationMode, MigrationPlan, PlanDecision, PlanFixId, PlanItem, PlanOptions, SourceFacts } from './types.js';

export interface PlanInput {
  mode: MigrationMode;
  vm: string;
  /** Node names, for the sentences. */
  source: string;
  dest: string;
  devices: DomainDevices;
  sourceFacts: SourceFacts;
  destFacts: DestFacts;
  options: PlanOptions;
}

/** Pools whose volumes live on this host's own disks: a volume there is not shared storage. */
const LOCAL_POOL_TYPES = new Set(['dir', 'fs', 'logical', 'disk', 'zfs']);
const COPYABLE_FORMATS = new Set(['qcow2', 'raw']);

type Draft = Omit<PlanItem, 'fix' | 'fixes' | 'bytes' | 'target' | 'format' | 'path'> & Partial<Pick<PlanItem, 'fix' | 'fixes' | 'bytes' | 'target' | 'format' | 'path'>>;

const item = (d: Draft): PlanItem => ({ path: null, target: null, format: null, fix: null, fixes: [], bytes: 0, ...d });

/**
 * What a migration does with every element of the VM that refers to storage or host
 * state: one decision each, with a one-sentence reason and, for refusals, the fix.
 * Pure: everything it needs to know about both nodes is in `facts`.
 */
export function buildMigrationPlan(input: PlanInput): MigrationPlan {
  const items: PlanItem[] = [];
  for (const disk of input.devices.disks) {
    items.push(disk.device === 'cdrom' || disk.device === 'floppy' ? planMedia(disk, input) : planDisk(disk, input));
  }
  items.push(...planBootFiles(input));
  items.push(...planTpms(input));
  input.devices.hostdevs.forEach((h, n) => items.push(item({
    id: `hostdev:${n}`, element: `host device ${h.source}`, decision: 'refuse',
    reason: `The VM uses the host's own device (${h.source} passthrough), which does not exist on ${input.dest}.`,
    fix: 'Detach the host device (virsh detach-device --config), move the VM, and attach the destination\'s device there.',
  })));
  input.devices.interfaces.forEach((i, n) => items.push(planInterface(i, n, input)));
  input.devices.filesystems.forEach((f, n) => items.push(item({
    id: `filesystem:${n}`, element: `shared folder ${f.type} ${f.source}`, decision: 'refuse',
    reason: `The VM shares a host directory (${f.type}), which libvirt cannot migrate.`,
    fix: 'Remove the <filesystem> device for the move (virsh edit), or use network storage (NFS) inside the guest.',
  })));
  input.devices.serials.forEach((s, n) => {
    if (s.type !== 'file' || !s.path) return;
    items.push(item({ id: `serial:${n}`, element: `serial log ${s.path}`, path: s.path, decision: 'as-is', reason: `A log file: libvirt opens ${s.path} afresh on ${input.dest}; this node's copy stays here.` }));
  });
  if (input.sourceFacts.snapshots > 0) {
    items.push(item({
      id: 'snapshots', element: `${input.sourceFacts.snapshots} snapshot(s)`, decision: 'refuse',
      reason: `VM ${input.vm} has ${input.sourceFacts.snapshots} snapshot(s); libvirt does not move snapshots, and internal ones would be lost or refuse the move.`,
      fix: 'Delete the snapshots (virsh snapshot-delete) or revert and delete them, then migrate.',
    }));
  }
  if (input.sourceFacts.checkpoints > 0) {
    items.push(item({
      id: 'checkpoints', element: `${input.sourceFacts.checkpoints} checkpoint(s)`, decision: 'refuse',
      reason: `VM ${input.vm} has ${input.sourceFacts.checkpoints} backup checkpoint(s), which libvirt does not migrate.`,
      fix: 'Delete the checkpoints (virsh checkpoint-delete), then migrate; the next backup starts a new chain.',
    }));
  }
  return { mode: input.mode, go: items.every((i) => i.decision !== 'refuse'), items };
}

function diskLabel(d: DeviceDisk): string {
  const where = d.path ?? (d.network ? `${d.network.protocol}://${d.network.hosts.map((h) => h.name).join(',')}/${d.network.name ?? ''}` : d.volume ? `${d.volume.pool}/${d.volume.volume}` : 'no source');
  const flags = [d.format, d.readonly ? 'read-only' : null, d.shareable ? 'shareable' : null, d.configOnly ? 'not attached to the running VM' : null].filter(Boolean).join(', ');
  return `${({ lun: 'LUN', cdrom: 'CD-ROM', floppy: 'floppy', disk: 'disk' } as const)[d.device] ?? d.device} ${d.target} ${where}${flags ? ` (${flags})` : ''}`;
}

function planDisk(d: DeviceDisk, input: PlanInput): PlanItem {
  const base = { id: `disk:${d.target}`, element: diskLabel(d), path: d.path, target: d.target, format: d.format };
  const refuse = (reason: string, fix: string) => item({ ...base, decision: 'refuse', reason, fix });
  if (d.shareable) return refuse(`Disk ${d.target} is marked shareable: it is shared between VMs, and copying it would split it.`, 'Detach it for the move (virsh detach-disk --config), or put it on shared storage both nodes reach.');
  if (d.device === 'lun') return refuse(`Disk ${d.target} passes a host SCSI LUN through to the VM; that device is this host's.`, 'Detach the LUN for the move, or use shared iSCSI storage both nodes log in to.');
  if (d.transient) return refuse(`Disk ${d.target} is transient (its changes are thrown away at shutdown); libvirt cannot migrate transient disks.`, 'Remove <transient/> from the disk (virsh edit) for the move.');
  if (d.type === 'network') return planNetworkSource(d, base, input);
  if (d.type === 'volume') return planVolume(d, base, input);
  if (d.type === 'block' || d.path?.startsWith('/dev/')) {
    return refuse(`Disk ${d.target} is a block device of this host (${d.path ?? 'no path'}); kvm-ferry copies only image files.`, 'Convert it to an image file (qemu-img convert -O qcow2) and point the disk at the file, or use shared storage both nodes reach.');
  }
  if (d.type !== 'file') return refuse(`Disk ${d.target} has a ${d.type} source, which kvm-ferry cannot move.`, 'Convert it to a qcow2 or raw image file first.');
  if (!d.path) return item({ ...base, decision: 'as-is', reason: `Disk ${d.target} has no source; there is nothing to move.` });
  const fact = input.sourceFacts.files[d.path];
  if (!fact || fact.kind === 'missing') return refuse(`The file ${d.path} of disk ${d.target} does not exist on ${input.source}.`, 'Restore the file or detach the disk (virsh detach-disk --config), then migrate.');
  const image = input.sourceFacts.images[d.path];
  const backing = image?.backingFile ?? d.backingStore;
  if (backing) return refuse(`${d.path} sits on a backing file (${backing}); backing chains are not migrated.`, `Flatten it first: virsh blockpull (running) or qemu-img convert -O qcow2 ${d.path} <new file>.`);
  const format = image?.format ?? d.format ?? 'raw';
  if (!COPYABLE_FORMATS.has(format)) return refuse(`${d.path} is a ${format} image; kvm-ferry copies only qcow2 and raw.`, `Convert it: qemu-img convert -O qcow2 ${d.path} <new file>, and point the disk at it.`);
  const there = input.destFacts.files[d.path];
  if (there && there.kind !== 'missing') return refuse(`A file already exists at ${d.path} on ${input.dest}.`, `Move or delete that file on ${input.dest} first, if nothing there uses it.`);
  const others = input.sourceFacts.otherUsers[d.path] ?? [];
  const keep = others.length ? ` It stays on ${input.source} too: ${others.length > 1 ? `VMs ${others.join(', ')} use` : `VM ${others[0]} uses`} it.` : '';
  const bytes = input.mode === 'live' && !d.readonly && !d.configOnly ? image?.allocatedBytes ?? 0 : image?.fileBytes ?? fact.sizeBytes ?? 0;
  const withFormat = { ...base, format };
  if (input.mode === 'offline') {
    return item({ ...withFormat, decision: 'copy', bytes, reason: `Copied to ${input.dest} through SSH (sparse), then checked there with SHA-256.${keep}` });
  }
  if (d.readonly || d.configOnly) {
    const why = d.readonly ? 'It is read-only, so it cannot change' : 'The running VM does not use it, so it cannot change';
    return item({ ...withFormat, decision: 'copy-first', bytes, reason: `${why}: copied to ${input.dest} (sparse, SHA-256 checked) before the live move starts.${keep}` });
  }
  return item({ ...withFormat, decision: 'copy', bytes, reason: `Mirrored to ${input.dest} while the VM runs (into a sparse file created there).${keep}` });
}

function planNetworkSource(d: DeviceDisk, base: Pick<PlanItem, 'id' | 'element' | 'path' | 'target' | 'format'>, input: PlanInput): PlanItem {
  const net = d.network!;
  const hosts = net.hosts.map((h) => h.name).filter((h) => h !== '');
  const unresolved = hosts.filter((h) => input.destFacts.resolvable[h] !== true);
  if (unresolved.length) {
    return item({ ...base, decision: 'refuse', reason: `${input.dest} cannot resolve ${unresolved.join(', ')}, the ${net.protocol} host(s) of ${d.device} ${d.target}.`, fix: `Make ${unresolved.join(', ')} resolvable and reachable from ${input.dest} (DNS or /etc/hosts), then migrate.` });
  }
  const secret = net.secret?.toLowerCase();
  if (secret && !(input.destFacts.secrets ?? []).includes(secret)) {
    return item({ ...base, decision: 'refuse', reason: `The ${net.protocol} image of ${d.device} ${d.target} logs in with libvirt secret ${secret}, which ${input.dest} does not have.`, fix: `Define the same secret on ${input.dest} (virsh secret-dumpxml ${secret} here, secret-define and secret-set-value there), then migrate.` });
  }
  return item({ ...base, decision: 'shared', reason: `${net.protocol} storage${hosts.length ? ` on ${hosts.join(', ')}` : ''}: ${input.dest} reaches the same image; nothing is copied or deleted.` });
}

function planVolume(d: DeviceDisk, base: Pick<PlanItem, 'id' | 'element' | 'path' | 'target' | 'format'>, input: PlanInput): PlanItem {
  const { pool, volume } = d.volume ?? { pool: '?', volume: '?' };
  const type = input.sourceFacts.pools[pool]?.type ?? 'unknown';
  if (LOCAL_POOL_TYPES.has(type)) {
    return item({ ...base, decision: 'refuse', reason: `Volume ${volume} is in pool ${pool}, a ${type} pool on this host's own disks, which kvm-ferry does not copy.`, fix: `Point the disk at the volume's file (virsh vol-path --pool ${pool} ${volume}) with type='file', then migrate.` });
  }
  const there = input.destFacts.pools[pool];
  if (!there || !there.active) {
    return item({ ...base, decision: 'refuse', reason: `Pool ${pool} is ${there ? 'not active' : 'not defined'} on ${input.dest}.`, fix: `Define and start pool ${pool} on ${input.dest} (virsh pool-define / pool-start) over the same shared storage.` });
  }
  if (!there.volumes.includes(volume)) {
    return item({ ...base, decision: 'refuse', reason: `Pool ${pool} on ${input.dest} has no volume ${volume}.`, fix: `Refresh the pool on ${input.dest} (virsh pool-refresh ${pool}) and check it is the same shared storage.` });
  }
  return item({ ...base, decision: 'shared', reason: `Volume ${volume} of ${type} pool ${pool}, which ${input.dest} has too: nothing is copied or deleted.` });
}

function identical(a: FileFact | undefined, b: FileFact | undefined): boolean {
  return !!a && !!b && a.kind === 'file' && b.kind === 'file' && a.sizeBytes === b.sizeBytes && !!a.sha256 && a.sha256 === b.sha256;
}

function differs(path: string, input: PlanInput): string {
  const there = input.destFacts.files[path];
  if (!there || there.kind === 'missing') return `${path} does not exist on ${input.dest}`;
  return `${path} on ${input.dest} differs from this node's (${there.sizeBytes !== input.sourceFacts.files[path]?.sizeBytes ? 'size' : 'SHA-256'})`;
}

function planMedia(d: DeviceDisk, input: PlanInput): PlanItem {
  const kind = d.device === 'floppy' ? 'floppy' : 'CD-ROM';
  const base = { id: `${d.device}:${d.target}`, element: diskLabel(d), path: d.path, target: d.target, format: d.format };
  if (d.type === 'network') {
    if (!d.network) return item({ ...base, decision: 'as-is', reason: `Empty ${kind} drive: it moves as it is.` });
    const net = planNetworkSource(d, base, input);
    if (net.decision !== 'refuse') return net;
    if (input.options.ejectMedia) return item({ ...base, decision: 'eject', reason: `The media is ejected for the move, as asked; the ${kind} drive is empty on ${input.dest}.` });
    return { ...net, fixes: ['ejectMedia'], fix: `${net.fix} Or eject the media for the move (the "eject" option).` };
  }
  if (!d.path) return item({ ...base, decision: 'as-is', reason: `Empty ${kind} drive: it moves as it is.` });
  const eject = item({ ...base, decision: 'eject', reason: `The media ${d.path} is ejected for the move, as asked; the ${kind} drive is empty on ${input.dest}.` });
  const src = input.sourceFacts.files[d.path];
  if (d.type === 'block' || d.path.startsWith('/dev/')) {
    if (input.options.ejectMedia) return eject;
    return item({ ...base, decision: 'refuse', fixes: ['ejectMedia'], reason: `The ${kind} ${d.target} uses this host's drive ${d.path}.`, fix: 'Eject the media for the move (the "eject" option), then migrate.' });
  }
  if (!src || src.kind === 'missing') {
    if (input.options.ejectMedia) return eject;
    return item({ ...base, decision: 'refuse', fixes: ['ejectMedia'], reason: `The media ${d.path} of ${kind} ${d.target} does not exist on ${input.source} either.`, fix: 'Eject the media for the move (the "eject" option), then migrate.' });
  }
  if (identical(src, input.destFacts.files[d.path])) {
    return item({ ...base, decision: 'present', reason: `${d.path} exists identically on ${input.dest} (same size and SHA-256); the media stays inserted.` });
  }
  if (input.options.copyMedia) {
    return item({ ...base, decision: 'carry', bytes: src.sizeBytes ?? 0, reason: `${differs(d.path, input)}: it is copied there first (SHA-256 checked) and kept on both nodes.` });
  }
  if (input.options.ejectMedia) return eject;
  return item({
    ...base, decision: 'refuse', fixes: ['ejectMedia', 'copyMedia'],
    reason: `The ${kind} ${d.target} holds ${d.path}, but ${differs(d.path, input)}.`,
    fix: `Eject the media for the move, or copy ${d.path} to ${input.dest} first (the "eject" and "copy media" options do either).`,
  });
}

function planBootFiles(input: PlanInput): PlanItem[] {
  const out: PlanItem[] = [];
  const { loader, nvram } = input.devices;
  const mustMatch = (id: string, what: string, path: string, fix: string) => {
    const src = input.sourceFacts.files[path];
    if (identical(src, input.destFacts.files[path])) {
      out.push(item({ id, element: `${what} ${path}`, path, decision: 'present', reason: `${path} is identical on ${input.dest} (same size and SHA-256).` }));
    } else {
      const why = !src || src.kind === 'missing' ? `${path} does not exist on ${input.source} either` : differs(path, input);
      out.push(item({ id, element: `${what} ${path}`, path, decision: 'refuse', reason: `The VM boots from ${what} ${path}, but ${why}.`, fix }));
    }
  };
  if (loader) mustMatch('loader', 'firmware', loader.path, `Install the same firmware on ${input.dest} (e.g. the same version of the ovmf package), so ${loader.path} matches.`);
  if (nvram) out.push(planNvram(nvram.path, input));
  const bootFix = (path: string) => `Copy ${path} from ${input.source} to the same path on ${input.dest}, then migrate.`;
  if (input.devices.kernel) mustMatch('kernel', 'kernel', input.devices.kernel, bootFix(input.devices.kernel));
  if (input.devices.initrd) mustMatch('initrd', 'initrd', input.devices.initrd, bootFix(input.devices.initrd));
  if (input.devices.dtb) mustMatch('dtb', 'device tree', input.devices.dtb, bootFix(input.devices.dtb));
  return out;
}

function planNvram(path: string, input: PlanInput): PlanItem {
  const base = { id: 'nvram', element: `UEFI variables ${path}`, path };
  const src = input.sourceFacts.files[path];
  const others = input.sourceFacts.otherUsers[path] ?? [];
  if (others.length) {
    return item({ ...base, decision: 'refuse', reason: `The UEFI variable file ${path} is also used by VM ${others.join(', ')}; moving it would take it from them.`, fix: 'Give each VM its own NVRAM file (copy it and point <nvram> at the copy with virsh edit), then migrate.' });
  }
  if (input.mode === 'live') {
    return item({ ...base, decision: 'stream', reason: `QEMU carries the UEFI variables in the migration stream and writes them to ${path} on ${input.dest}; checked there afterwards.` });
  }
  if (!src || src.kind === 'missing') {
    return item({ ...base, decision: 'as-is', reason: `${path} was never created (the VM has not started yet); libvirt makes it from the template on first start.` });
  }
  const there = input.destFacts.files[path];
  if (there && there.kind !== 'missing') {
    return item({ ...base, decision: 'refuse', reason: `A UEFI variable file already exists at ${path} on ${input.dest}.`, fix: `Move that file away on ${input.dest} if no VM there uses it, then migrate.` });
  }
  return item({ ...base, decision: 'carry', bytes: src.sizeBytes ?? 0, reason: `Copied byte-identical to ${input.dest} (SHA-256 checked); libvirt's offline move does not carry it.` });
}

function planTpms(input: PlanInput): PlanItem[] {
  return input.devices.tpms.map((t, n) => {
    const base = { id: `tpm:${n}`, element: `TPM ${t.model ?? ''} (${t.backend})`.replace('  ', ' ') };
    if (t.backend !== 'emulator') {
      return item({ ...base, decision: 'refuse', reason: `The TPM is this host's own (${t.backend}${t.path ? ` ${t.path}` : ''}); its keys cannot move.`, fix: 'Switch the VM to an emulated TPM (swtpm) or remove the TPM for the move.' });
    }
    if (input.mode === 'live') return item({ ...base, decision: 'stream', reason: `swtpm's state travels in the migration stream to ${input.dest}; checked there afterwards.` });
    const files = input.sourceFacts.tpmStateFiles;
    if (!files.length) return item({ ...base, decision: 'as-is', reason: 'The emulated TPM has no state yet; swtpm creates it on first start.' });
    const bytes = files.reduce((a, f) => a + (input.sourceFacts.files[f]?.sizeBytes ?? 0), 0);
    return item({ ...base, path: files[0] ?? null, decision: 'carry', bytes, reason: `Its state (${files.length} file(s)) is copied byte-identical to ${input.dest} (SHA-256 checked).` });
  });
}

function planInterface(i: DomainDevices['interfaces'][number], n: number, input: PlanInput): PlanItem {
  const base = { id: `interface:${n}`, element: `network interface ${i.source}` };
  const decide = (decision: PlanDecision, reason: string, fix: string | null = null, fixes: PlanFixId[] = []) => item({ ...base, decision, reason, fix, fixes });
  switch (i.type) {
    case 'hostdev':
      return decide('refuse', `The interface is a host network card passed through (${i.source}), which is this host's.`, 'Replace it with a bridge or network interface for the move.');
    case 'vhostuser':
      return decide('refuse', 'The interface uses vhost-user, whose socket and switch are this host\'s; kvm-ferry does not migrate it.', 'Replace it with a bridge or network interface for the move.');
    case 'network':
      return input.destFacts.networks.includes(i.hostName ?? '')
        ? decide('present', `libvirt network ${i.hostName} is active on ${input.dest}.`)
        : decide('refuse', `libvirt network ${i.hostName} is not active on ${input.dest}.`, `Define and start network ${i.hostName} on ${input.dest} (virsh net-start ${i.hostName}).`);
    case 'bridge':
    case 'direct': {
      const what = i.type === 'bridge' ? 'bridge' : 'network device';
      return input.destFacts.interfaces.includes(i.hostName ?? '')
        ? decide('present', `${input.dest} has the ${what} ${i.hostName}.`)
        : decide('refuse', `${input.dest} has no ${what} ${i.hostName}.`, `Create the ${what} ${i.hostName} on ${input.dest}, then migrate.`);
    }
    default:
      return decide('as-is', `A ${i.type} interface needs nothing from ${input.dest}.`);
  }
}
