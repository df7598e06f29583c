import type { VirtType } from '../../config.js';
import { AppError } from '../../errors.js';
import type { CommandRunner } from '../process/run-command.js';

export interface VirtInstallDisk {
  path: string;
  device: 'disk' | 'cdrom';
  format?: string;
}

export type VmNetworkChoice = { kind: 'none' } | { kind: 'network'; name: string } | { kind: 'bridge'; name: string };

export interface VirtInstallSpec {
  connectUri: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  osVariant: string;
  virtType: VirtType;
  disks: VirtInstallDisk[];
  vncPort: 'auto' | number;
  vncListen: string;
  network: VmNetworkChoice;
  /** Serial console also logged to a file, so a headless guest's output can be read. */
  serialLogPath: string | null;
}

/** virt-install splits option values on commas; a comma in a path would inject a sub-option. */
function optionValue(value: string, what: string): string {
  if (/[,\s\0]/.test(value) || value.length === 0) {
    throw new AppError('BAD_INPUT', `${what} must not contain commas or spaces.`, { detail: value });
  }
  return value;
}

/**
 * Always a single-phase "--import" definition printed as XML: kvm-ferry defines and
 * starts the domain itself, so "create without starting" and "create from ISO" share
 * one path (the ISO is a CD-ROM after the disk in boot order).
 */
export function buildVirtInstallArgs(spec: VirtInstallSpec): string[] {
  const args = [
    '--connect', spec.connectUri,
    '--name', spec.name,
    '--vcpus', String(spec.vcpus),
    '--memory', String(spec.memoryMiB),
    '--osinfo', optionValue(spec.osVariant, 'OS variant'),
  ];
  if (spec.virtType !== 'auto') args.push('--virt-type', spec.virtType);
  args.push('--import');
  for (const d of spec.disks) {
    const path = optionValue(d.path, 'Disk path');
    if (d.device === 'cdrom') args.push('--disk', `path=${path},device=cdrom,readonly=on`);
    else args.push('--disk', `path=${path}${d.format ? `,format=${optionValue(d.format, 'Disk format')}` : ''},bus=virtio`);
  }
  args.push('--boot', 'hd,cdrom');
  const listen = optionValue(spec.vncListen, 'VNC listen address');
  args.push('--graphics', spec.vncPort === 'auto' ? `vnc,listen=${listen}` : `vnc,listen=${listen},port=${spec.vncPort}`);
  args.push('--network', networkArg(spec.network));
  if (spec.serialLogPath) args.push('--serial', `pty,log.file=${optionValue(spec.serialLogPath, 'Serial log path')},log.append=on`);
  args.push('--noautoconsole', '--print-xml');
  return args;
}

function networkArg(n: VmNetworkChoice): string {
  if (n.kind === 'none') return 'none';
  return `${n.kind}=${optionValue(n.name, 'Network name')},model=virtio`;
}

export class VirtInstall {
  constructor(private readonly run: CommandRunner, private readonly timeoutMs: number) {}

  /** Returns the domain XML virt-install generated and checked against this host's capabilities. */
  async printXml(spec: VirtInstallSpec, extraArgs: readonly string[] = []): Promise<string> {
    const r = await this.run('virt-install', [...buildVirtInstallArgs(spec), ...extraArgs], {
      timeoutMs: this.timeoutMs,
      failureMessage: `virt-install rejected the settings for VM ${spec.name}.`,
    });
    const xml = r.stdout.trim();
    if (!xml.startsWith('<domain')) {
      throw new AppError('COMMAND_FAILED', `virt-install did not produce a definition for VM ${spec.name}.`, { detail: (r.stderr || r.stdout).slice(0, 4000) });
    }
    return xml;
  }

  async osVariants(): Promise<string[]> {
    const r = await this.run('virt-install', ['--osinfo', 'list'], { timeoutMs: 30_000, failureMessage: 'Could not list OS variants.' });
    const ids = new Set<string>(['generic']);
    for (const line of r.stdout.split('\n')) {
      for (const part of line.split(',')) {
        const id = part.trim();
        if (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) ids.add(id);
      }
    }
    return [...ids].sort();
  }
}
