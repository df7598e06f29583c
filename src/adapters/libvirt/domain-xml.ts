import type { DomainDevices } from '../../domain/domain-devices.js';
import { readDomainDevices } from './domain-devices-xml.js';
import { attr, parseDomainElement, type XmlNode } from './xml-doc.js';

/** The parts of a libvirt domain XML the product uses; views never see XML. */
export interface DomainDescription {
  name: string;
  uuid: string;
  /** libvirt's domain id: present only while the VM is active (running or paused). */
  id: number | null;
  type: string;
  vcpus: number;
  memoryKiB: number;
  currentMemoryKiB: number;
  arch: string | null;
  emulator: string | null;
  vnc: { port: number | null; autoport: boolean; listen: string | null } | null;
  disks: DomainDiskXml[];
  /** libosinfo short id from the metadata virt-install writes, e.g. "debian12". */
  osVariant: string | null;
  /** Everything that refers to storage or host state, for the migration plan. */
  devices: DomainDevices;
}

export interface DomainDiskXml {
  target: string;
  device: 'disk' | 'cdrom' | 'floppy' | 'lun';
  /** "file", "block", "network", "volume"… */
  type: string;
  path: string | null;
  format: string | null;
  readonly: boolean;
}

type Node = XmlNode;

function text(n: unknown): string | null {
  if (n === undefined || n === null) return null;
  if (typeof n === 'string') return n;
  if (typeof n === 'object' && '#text' in (n as Node)) return String((n as Node)['#text']);
  return null;
}

/** libvirt memory elements carry a unit attribute; normalise to KiB. */
function kib(n: unknown): number {
  const value = Number(text(n) ?? 0);
  const unit = (attr(n, 'unit') ?? 'KiB').toLowerCase();
  const factor: Record<string, number> = { b: 1 / 1024, bytes: 1 / 1024, k: 1, kib: 1, kb: 1000 / 1024, m: 1024, mib: 1024, mb: 1e6 / 1024, g: 1024 ** 2, gib: 1024 ** 2, gb: 1e9 / 1024 };
  return Math.round(value * (factor[unit] ?? 1));
}

export function parseDomainXml(xml: string): DomainDescription {
  const dom = parseDomainElement(xml);
  const devices = (dom.devices ?? {}) as Node;
  const os = (dom.os ?? {}) as Node;

  const graphics = ((devices.graphics as Node[] | undefined) ?? []).find((g) => attr(g, 'type') === 'vnc');
  let vnc: DomainDescription['vnc'] = null;
  if (graphics) {
    const port = Number(attr(graphics, 'port'));
    const listenEl = (graphics.listen as Node[] | undefined)?.[0];
    vnc = {
      port: Number.isInteger(port) && port > 0 ? port : null,
      autoport: attr(graphics, 'autoport') === 'yes',
      listen: attr(graphics, 'listen') ?? attr(listenEl, 'address'),
    };
  }

  const disks = ((devices.disk as Node[] | undefined) ?? []).map((d): DomainDiskXml => {
    const source = d.source as Node | undefined;
    const type = attr(d, 'type') ?? 'file';
    const path = attr(source, 'file') ?? attr(source, 'dev') ?? attr(source, 'volume') ?? attr(source, 'name');
    return {
      target: attr(d.target, 'dev') ?? '',
      device: (attr(d, 'device') ?? 'disk') as DomainDiskXml['device'],
      type,
      path,
      format: attr(d.driver, 'type'),
      readonly: d.readonly !== undefined,
    };
  });

  let osVariant: string | null = null;
  const metadata = dom.metadata as Node | undefined;
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (!k.endsWith(':libosinfo') && k !== 'libosinfo') continue;
      const osEl = Object.entries(v as Node).find(([ek]) => ek === 'os' || ek.endsWith(':os'))?.[1];
      const id = attr(osEl, 'id');
      if (id) osVariant = libosinfoShortId(id);
    }
  }

  const vcpu = dom.vcpu;
  return {
    name: text(dom.name) ?? '',
    uuid: text(dom.uuid) ?? '',
    id: /^\d+$/.test(attr(dom, 'id') ?? '') ? Number(attr(dom, 'id')) : null,
    type: attr(dom, 'type') ?? '',
    vcpus: Number(text(vcpu) ?? 1),
    memoryKiB: kib(dom.memory),
    currentMemoryKiB: dom.currentMemory !== undefined ? kib(dom.currentMemory) : kib(dom.memory),
    arch: attr(os.type, 'arch'),
    emulator: text(devices.emulator),
    vnc,
    disks,
    osVariant,
    devices: readDomainDevices(dom),
  };
}

/** "http://debian.org/debian/12" → "debian12"; "http://libosinfo.org/linux/2022" → "linux2022". */
export function libosinfoShortId(id: string): string {
  const parts = id.replace(/^[a-z]+:\/\/[^/]+\//, '').split('/').filter(Boolean);
  if (parts.length >= 2) return `${parts[parts.length - 2]}${parts[parts.length - 1]}`;
  return parts[0] ?? id;
}
