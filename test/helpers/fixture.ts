import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

export interface FixtureDomain {
  name: string;
  /** Fixed UUID (default: a random one). */
  uuid?: string;
  state?: 'running' | 'shut-off' | 'paused';
  vcpus?: number;
  memoryMiB?: number;
  disks?: { path: string; format?: string; device?: 'disk' | 'cdrom' }[];
  vncPort?: number;
  /** One snapshot in libvirt's metadata: the binding's flagless undefine then refuses, as for a UEFI VM's NVRAM. */
  snapshot?: boolean;
}

export interface Fixture {
  /** test:///<abs path>.xml — a private libvirt test-driver world for one test. */
  uri: string;
  dir: string;
  imageDir: string;
  isoDir: string;
  dataDir: string;
}

const RUNSTATE: Record<NonNullable<FixtureDomain['state']>, number> = { running: 1, paused: 3, 'shut-off': 5 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

export function domainXml(d: FixtureDomain): string {
  const disks = (d.disks ?? [])
    .map((k, i) => {
      const dev = k.device === 'cdrom' ? `hd${String.fromCharCode(97 + i)}` : `vd${String.fromCharCode(97 + i)}`;
      return `<disk type="file" device="${k.device ?? 'disk'}"><driver name="qemu" type="${k.format ?? (k.device === 'cdrom' ? 'raw' : 'qcow2')}"/><source file="${esc(k.path)}"/><target dev="${dev}" bus="${k.device === 'cdrom' ? 'ide' : 'virtio'}"/>${k.device === 'cdrom' ? '<readonly/>' : ''}</disk>`;
    })
    .join('');
  const vnc = d.vncPort ? `<graphics type="vnc" port="${d.vncPort}" listen="127.0.0.1"/>` : '';
  const state = d.state && d.state !== 'running' ? `<test:runstate>${RUNSTATE[d.state]}</test:runstate>` : '';
  const uuid = d.uuid ?? randomUUID();
  const os = '<os><type arch="x86_64">hvm</type></os>';
  const snapshot = d.snapshot
    ? `<test:domainsnapshot><name>snap1</name><state>shutoff</state><creationTime>1</creationTime><active>0</active>` +
      `<domain type="test"><name>${esc(d.name)}</name><uuid>${uuid}</uuid><memory unit="MiB">${d.memoryMiB ?? 256}</memory>${os}</domain></test:domainsnapshot>`
    : '';
  return `<domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">${state}<name>${esc(d.name)}</name><uuid>${uuid}</uuid>` +
    `<memory unit="MiB">${d.memoryMiB ?? 256}</memory><vcpu>${d.vcpus ?? 1}</vcpu>${os}` +
    `<devices>${disks}${vnc}</devices>${snapshot}</domain>`;
}

/** Writes a fixture file (host with `cpus` CPUs and `memoryMiB` RAM) and the directories a config needs. */
export function makeFixture(domains: FixtureDomain[] = [], host: { cpus?: number; memoryMiB?: number } = {}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'kvm-ferry-test-'));
  const cpus = host.cpus ?? 8;
  const xml = `<node><cpu><mhz>2000</mhz><model>x86_64</model><active>${cpus}</active><max>${cpus}</max><nodes>1</nodes><sockets>1</sockets><cores>${cpus}</cores><threads>1</threads></cpu>` +
    `<memory>${(host.memoryMiB ?? 16384) * 1024}</memory>${domains.map(domainXml).join('\n')}</node>`;
  const path = join(dir, 'node.xml');
  writeFileSync(path, xml);
  const f: Fixture = { uri: `test://${path}`, dir, imageDir: join(dir, 'images'), isoDir: join(dir, 'iso'), dataDir: join(dir, 'data') };
  for (const d of [f.imageDir, f.isoDir, f.dataDir]) mkdirSync(d, { recursive: true });
  return f;
}
