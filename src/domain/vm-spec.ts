import { badInput } from '../errors.js';
import { requireVmName } from './names.js';
import { parseBool, requireChoice, requireInt } from './numbers.js';

export const MIN_MEMORY_MIB = 64;
export const MIN_VNC_PORT = 5900;
export const MAX_VNC_PORT = 65535;
export const MAX_DISK_GIB = 64 * 1024;
export const SOURCE_KINDS = ['iso', 'import', 'none'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

/** What the user asked for, checked for shape and range; file paths are still unresolved names. */
export interface CreateVmRequest {
  name: string;
  vcpus: number;
  memoryMiB: number;
  osVariant: string;
  /** Size of the new disk; null when an existing image is imported. */
  diskGiB: number | null;
  vncPort: 'auto' | number;
  source: { kind: 'iso'; iso: string } | { kind: 'import'; image: string } | { kind: 'none' };
  start: boolean;
}

export interface HostLimits {
  hostCpus: number;
  hostMemoryMiB: number;
  /** Free bytes in the image directory. */
  freeDiskBytes: number;
  osVariants: ReadonlySet<string>;
}

const MAX_FILE_NAME = 255;

function requireFileName(field: string, value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_FILE_NAME || /[\0\n\r]/.test(value)) {
    throw badInput(field, `Pick ${what} from the list.`);
  }
  return value;
}

export function parseCreateVmRequest(body: Record<string, unknown>, limits: HostLimits): CreateVmRequest {
  const name = requireVmName(body.name);
  const vcpus = requireInt('vcpus', body.vcpus, 1, limits.hostCpus, 'vCPUs');
  const memoryMiB = requireInt('memoryMiB', body.memoryMiB, MIN_MEMORY_MIB, limits.hostMemoryMiB, 'RAM (MiB)');

  const rawOs = body.osVariant;
  if (rawOs !== undefined && rawOs !== null && typeof rawOs !== 'string') throw badInput('osVariant', 'Unknown OS variant; pick one from the list, or "generic".');
  const osVariant = rawOs ? rawOs : 'generic';
  if (!limits.osVariants.has(osVariant)) {
    throw badInput('osVariant', 'Unknown OS variant; pick one from the list, or "generic".');
  }

  const kind = requireChoice('source', body.source, SOURCE_KINDS, 'none');
  let source: CreateVmRequest['source'];
  if (kind === 'iso') source = { kind, iso: requireFileName('iso', body.iso, 'an installation ISO') };
  else if (kind === 'import') source = { kind, image: requireFileName('image', body.image, 'a disk image to import') };
  else source = { kind };

  let diskGiB: number | null = null;
  if (kind !== 'import') {
    const freeGiB = Math.floor(limits.freeDiskBytes / 1024 ** 3);
    if (freeGiB < 1) throw badInput('diskGiB', 'The image directory has less than 1 GiB free; free some space first.');
    diskGiB = requireInt('diskGiB', body.diskGiB, 1, Math.min(freeGiB, MAX_DISK_GIB), 'Disk size (GiB)');
  }

  const vncRaw = body.vncPort;
  const vncPort =
    vncRaw === undefined || vncRaw === '' || vncRaw === 'auto'
      ? 'auto'
      : requireInt('vncPort', vncRaw, MIN_VNC_PORT, MAX_VNC_PORT, 'VNC port');

  const start = parseBool('start', body.start, true);
  return { name, vcpus, memoryMiB, osVariant, diskGiB, vncPort, source, start };
}
