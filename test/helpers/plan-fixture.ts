import { existsSync, readFileSync } from 'node:fs';
import { parseDomainDevices } from '../../src/adapters/libvirt/domain-devices-xml.js';
import { parseDomainXml } from '../../src/adapters/libvirt/domain-xml.js';
import type { DomainDevices } from '../../src/domain/domain-devices.js';
import type { DestFacts, FileFact, MigrationMode, PlanOptions, SourceFacts } from '../../src/domain/migration-plan/types.js';
import type { PlanInput } from '../../src/domain/migration-plan/build-plan.js';

const GiB = 1024 ** 3;

export interface FixtureFacts {
  mode?: MigrationMode;
  options?: Partial<PlanOptions>;
  source?: Partial<SourceFacts>;
  dest?: Partial<DestFacts>;
}

/**
 * The facts a fixture's domain implies when nothing else is said (documented in
 * test/fixtures/domains/README.md): every file exists on the source; on the
 * destination, disk and NVRAM paths are free and firmware, kernels and media are
 * identical; hosts resolve, pools and networks exist.
 */
export function defaultFacts(devices: DomainDevices, uuid: string): { source: SourceFacts; dest: DestFacts } {
  const source: SourceFacts = { files: {}, images: {}, otherUsers: {}, snapshots: 0, checkpoints: 0, pools: {}, tpmStateFiles: [] };
  const dest: DestFacts = { files: {}, resolvable: {}, pools: {}, networks: [], interfaces: [] };
  const fileFact = (p: string): FileFact => ({ kind: p.startsWith('/dev/') ? 'block' : 'file', sizeBytes: GiB, sha256: `sha-${p}` });
  for (const d of devices.disks) {
    if (d.path && d.path.startsWith('/')) {
      source.files[d.path] = fileFact(d.path);
      if (d.device === 'disk' || d.device === 'lun') dest.files[d.path] = { kind: 'missing' };
      else dest.files[d.path] = { ...source.files[d.path]! };
      if (d.device === 'disk' && d.type === 'file') source.images[d.path] = { format: d.format ?? 'raw', virtualBytes: 10 * GiB, allocatedBytes: GiB, fileBytes: GiB, backingFile: null };
    }
    for (const h of d.network?.hosts ?? []) dest.resolvable[h.name] = true;
    if (d.network?.secret) dest.secrets = [...(dest.secrets ?? []), d.network.secret.toLowerCase()];
    if (d.volume) {
      source.pools[d.volume.pool] = { type: 'iscsi' };
      dest.pools[d.volume.pool] = { active: true, volumes: [...(dest.pools[d.volume.pool]?.volumes ?? []), d.volume.volume] };
    }
  }
  for (const p of [devices.loader?.path, devices.kernel, devices.initrd, devices.dtb]) {
    if (!p) continue;
    source.files[p] = fileFact(p);
    dest.files[p] = { ...source.files[p]! };
  }
  if (devices.nvram) {
    source.files[devices.nvram.path] = fileFact(devices.nvram.path);
    dest.files[devices.nvram.path] = { kind: 'missing' };
  }
  if (devices.tpms.some((t) => t.backend === 'emulator')) source.tpmStateFiles = [`/var/lib/libvirt/swtpm/${uuid}/tpm2/tpm2-00.permall`];
  for (const i of devices.interfaces) {
    if (i.type === 'network' && i.hostName) dest.networks.push(i.hostName);
    if ((i.type === 'bridge' || i.type === 'direct') && i.hostName) dest.interfaces.push(i.hostName);
  }
  return { source, dest };
}

function merge<T extends object>(base: T, over: Partial<T> | undefined): T {
  if (!over) return base;
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    // Maps (files, images, pools…) merge key by key; scalars and arrays replace.
    out[k] = b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' && !Array.isArray(v) ? { ...(b as object), ...(v as object) } : v;
  }
  return out as T;
}

export function loadPlanFixture(dir: string, name: string): { input: PlanInput; expect: { go: boolean; items: { id: string; decision: string; fixes?: string[] }[] } } {
  const xml = readFileSync(`${dir}/${name}.xml`, 'utf8');
  const desc = parseDomainXml(xml);
  const devices = parseDomainDevices(xml);
  const factsPath = `${dir}/${name}.facts.json`;
  const facts: FixtureFacts = existsSync(factsPath) ? (JSON.parse(readFileSync(factsPath, 'utf8')) as FixtureFacts) : {};
  const base = defaultFacts(devices, desc.uuid);
  return {
    input: {
      mode: facts.mode ?? 'live', vm: desc.name, source: 'node-a', dest: 'node-b', devices,
      sourceFacts: merge(base.source, facts.source), destFacts: merge(base.dest, facts.dest),
      options: { ejectMedia: false, copyMedia: false, ...facts.options },
    },
    expect: JSON.parse(readFileSync(`${dir}/${name}.expect.json`, 'utf8')),
  };
}
