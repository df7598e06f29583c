import type { DeviceDisk, DeviceSummary, DeviceTpm, DomainDevices, NetworkHost } from '../../domain/domain-devices.js';
import { attr, parseDomainElement, type XmlNode } from './xml-doc.js';

type Node = XmlNode;

/** qemu.conf's nvram_dir default on Debian (libvirt's own default). */
const DEFAULT_NVRAM_DIR = '/var/lib/libvirt/qemu/nvram';

function text(n: unknown): string | null {
  if (n === undefined || n === null) return null;
  if (typeof n === 'string') return n.trim() || null;
  if (typeof n === 'object' && '#text' in (n as Node)) return String((n as Node)['#text']).trim() || null;
  return null;
}

const list = (n: unknown): Node[] => (Array.isArray(n) ? (n as Node[]) : []);
const one = (n: unknown): Node | undefined => (Array.isArray(n) ? (n[0] as Node | undefined) : (n as Node | undefined));

function parseDisk(d: Node): DeviceDisk {
  const type = attr(d, 'type') ?? 'file';
  const source = one(d.source);
  const network = type === 'network' && source
    ? {
        protocol: attr(source, 'protocol') ?? '',
        name: attr(source, 'name'),
        hosts: list(source.host).map((h): NetworkHost => ({ name: attr(h, 'name') ?? attr(h, 'socket') ?? '', port: attr(h, 'port'), transport: attr(h, 'transport') })),
        // <auth> may sit in <source> (current) or in <disk> (older XML).
        secret: attr(one(one(source.auth ?? d.auth)?.secret), 'uuid'),
      }
    : null;
  const volume = type === 'volume' && source && attr(source, 'pool') ? { pool: attr(source, 'pool')!, volume: attr(source, 'volume') ?? '' } : null;
  const path = type === 'network' || type === 'volume' ? null : attr(source, 'file') ?? attr(source, 'dev') ?? attr(source, 'dir') ?? null;
  // An empty <backingStore/> terminates the chain; one with a source means an overlay.
  const backing = one(d.backingStore);
  const backingSource = backing ? one(backing.source) : undefined;
  const backingStore = backingSource ? attr(backingSource, 'file') ?? attr(backingSource, 'dev') ?? attr(backingSource, 'name') ?? 'another image' : null;
  return {
    target: attr(d.target, 'dev') ?? '',
    bus: attr(d.target, 'bus'),
    device: (attr(d, 'device') ?? 'disk') as DeviceDisk['device'],
    type,
    path,
    format: attr(d.driver, 'type'),
    readonly: d.readonly !== undefined,
    shareable: d.shareable !== undefined,
    transient: d.transient !== undefined,
    network,
    volume,
    backingStore,
  };
}

function hostdevSummary(h: Node): DeviceSummary {
  const type = attr(h, 'type') ?? attr(h, 'mode') ?? 'unknown';
  const src = one(h.source) ?? {};
  const addr = one((src as Node).address);
  const vendor = attr((src as Node).vendor, 'id');
  const product = attr((src as Node).product, 'id');
  let source = type;
  if (addr && attr(addr, 'bus') !== null && attr(addr, 'domain') !== null) {
    source = `${type} ${hex(attr(addr, 'domain'), 4)}:${hex(attr(addr, 'bus'), 2)}:${hex(attr(addr, 'slot'), 2)}.${Number(attr(addr, 'function') ?? 0)}`;
  } else if (vendor || product) source = `${type} ${vendor ?? '?'}:${product ?? '?'}`.replace(/0x/g, '');
  else if (addr) source = `${type} bus ${attr(addr, 'bus') ?? '?'} device ${attr(addr, 'device') ?? '?'}`;
  return { type, source, hostName: null };
}

function hex(v: string | null, width: number): string {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n.toString(16).padStart(width, '0') : String(v);
}

function interfaceSummary(i: Node): DeviceSummary {
  const type = attr(i, 'type') ?? 'unknown';
  const src = one(i.source);
  const hostName = type === 'network' ? attr(src, 'network') : type === 'bridge' ? attr(src, 'bridge') : type === 'direct' ? attr(src, 'dev') : null;
  const mac = attr(i.mac, 'address');
  const where = hostName ?? attr(src, 'path') ?? (type === 'hostdev' ? hostdevSummary(i).source : null);
  return { type, source: [type, where, mac ? `(${mac})` : null].filter(Boolean).join(' '), hostName };
}

function filesystemSummary(f: Node): DeviceSummary {
  const driver = attr(f.driver, 'type') ?? 'path';
  const src = one(f.source);
  const source = attr(src, 'dir') ?? attr(src, 'file') ?? attr(src, 'name') ?? attr(src, 'socket') ?? '';
  return { type: driver === 'virtiofs' ? 'virtiofs' : `9p (${attr(f, 'type') ?? 'mount'})`, source: `${source} as ${attr(f.target, 'dir') ?? '?'}`, hostName: null };
}

/** Reads the storage- and host-related parts of a domain XML (see DomainDevices). */
export function parseDomainDevices(xml: string): DomainDevices {
  return readDomainDevices(parseDomainElement(xml));
}

/** The same, from a <domain> element already parsed (parseDomainXml reads the document once). */
export function readDomainDevices(dom: Node): DomainDevices {
  const devices = (dom.devices ?? {}) as Node;
  const os = (dom.os ?? {}) as Node;
  const loaderEl = os.loader;
  const loaderPath = text(loaderEl);
  const nvramEl = os.nvram;
  // libvirt >= 8.5 also writes <nvram type='file'><source file='…'/></nvram>.
  const nvramPath = text(nvramEl) ?? attr(one((nvramEl as Node | undefined)?.source), 'file');
  const name = text(dom.name);
  const tpms = list(devices.tpm).map((t): DeviceTpm => {
    const backend = one(t.backend);
    return { model: attr(t, 'model'), backend: attr(backend, 'type') ?? 'unknown', path: attr(one(backend?.device), 'path') ?? attr(one(backend?.source), 'path') };
  });
  return {
    disks: list(devices.disk).map(parseDisk),
    loader: loaderPath ? { path: loaderPath, readonly: attr(loaderEl, 'readonly') === 'yes', type: attr(loaderEl, 'type') } : null,
    nvram: nvramPath
      ? { path: nvramPath, template: attr(nvramEl, 'template') }
      // libvirt 9.0 picks EFI firmware at start: the inactive XML of <os firmware='efi'>
      // names no NVRAM, but the variables live at libvirt's default path all the same.
      : attr(os, 'firmware') === 'efi' && name ? { path: `${DEFAULT_NVRAM_DIR}/${name}_VARS.fd`, template: null } : null,
    kernel: text(os.kernel),
    initrd: text(os.initrd),
    dtb: text(os.dtb),
    tpms,
    hostdevs: list(devices.hostdev).map(hostdevSummary),
    interfaces: list(devices.interface).map(interfaceSummary),
    filesystems: list(devices.filesystem).map(filesystemSummary),
    serials: list(devices.serial).map((s) => ({ type: attr(s, 'type') ?? 'pty', path: attr(s, 'type') === 'file' ? attr(one(s.source), 'path') : null })),
  };
}
