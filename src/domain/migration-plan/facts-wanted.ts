import type { DomainDevices } from '../domain-devices.js';
import type { MigrationMode } from './types.js';

/** What must be looked up on each node before a plan can be built: pure, from the devices. */
export interface FactsWanted {
  /** stat on the source. */
  sourcePaths: string[];
  /** qemu-img info on the source (local image files of disks). */
  images: string[];
  /** stat on the destination. */
  destPaths: string[];
  /** Files that must be identical on both nodes: hashed on both when the sizes match. */
  identity: string[];
  /** Host names of network storage the destination must resolve. */
  hosts: string[];
  /** Storage pools of volume disks. */
  pools: string[];
  networks: boolean;
  interfaces: boolean;
  /** Network storage authenticates with a libvirt secret the destination must have. */
  secrets: boolean;
  /** The swtpm state directory to list (offline moves of VMs with an emulated TPM). */
  tpmStateDir: string | null;
}

/** A host name or IP literal as it may appear in a domain's <host name=…>; anything else is never looked up. */
export const STORAGE_HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[?[0-9A-Fa-f:.]+\]?)$/;

const uniq = (xs: (string | null | undefined)[]): string[] => [...new Set(xs.filter((x): x is string => typeof x === 'string' && x !== ''))];

export function factsWanted(devices: DomainDevices, mode: MigrationMode, uuid: string): FactsWanted {
  const local = devices.disks.filter((d) => d.path && d.path.startsWith('/') && d.type !== 'network' && d.type !== 'volume');
  const diskFiles = local.filter((d) => d.device === 'disk' && d.type === 'file').map((d) => d.path);
  const media = local.filter((d) => d.device === 'cdrom' || d.device === 'floppy').map((d) => d.path);
  const boot = [devices.loader?.path, devices.kernel, devices.initrd, devices.dtb];
  return {
    sourcePaths: uniq([...local.map((d) => d.path), ...boot, devices.nvram?.path]),
    images: uniq(diskFiles),
    destPaths: uniq([...diskFiles, ...media, ...boot, devices.nvram?.path]),
    identity: uniq([...media, ...boot]),
    hosts: uniq(devices.disks.flatMap((d) => d.network?.hosts.map((h) => h.name) ?? [])),
    pools: uniq(devices.disks.map((d) => d.volume?.pool)),
    networks: devices.interfaces.some((i) => i.type === 'network'),
    interfaces: devices.interfaces.some((i) => i.type === 'bridge' || i.type === 'direct'),
    secrets: devices.disks.some((d) => d.network?.secret),
    tpmStateDir: mode === 'offline' && devices.tpms.some((t) => t.backend === 'emulator') && /^[0-9a-f-]{36}$/i.test(uuid) ? `/var/lib/libvirt/swtpm/${uuid.toLowerCase()}` : null,
  };
}
