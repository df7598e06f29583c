import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError } from '../../errors.js';
import type { DomainDevices } from '../../domain/domain-devices.js';
import { factsWanted, STORAGE_HOST_PATTERN } from '../../domain/migration-plan/facts-wanted.js';
import type { DestFacts, FileFact, ImageFact, MigrationMode, SourceFacts } from '../../domain/migration-plan/types.js';
import { domainList } from '../../adapters/libvirt/domain.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';

/** libvirt pool and network names as virsh accepts them; anything else is never passed on. */
const LIBVIRT_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export async function localFileFact(path: string): Promise<FileFact> {
  try {
    const st = await stat(path);
    return { kind: st.isFile() ? 'file' : st.isBlockDevice() ? 'block' : st.isDirectory() ? 'dir' : 'file', sizeBytes: st.size };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return { kind: 'missing' };
    throw e;
  }
}

export function localSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 1024 * 1024 }).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

/** stat on the peer: one command per path (a path may hold any character), over the shared connection. */
export async function remoteFileFact(peer: PeerNode, path: string): Promise<FileFact> {
  const r = await peer.shell.exec('stat', ['-L', '-c', '%F/%s', '--', path], { check: false, timeoutMs: 20_000 });
  if (r.exitCode !== 0) {
    if (/No such file|Not a directory/i.test(r.stderr)) return { kind: 'missing' };
    throw new Error(`stat ${path} on ${peer.name} failed: ${r.stderr.trim()}`);
  }
  const [type, size] = r.stdout.trim().split('/');
  const kind = type === 'regular file' || type === 'regular empty file' ? 'file' : type === 'block special file' ? 'block' : type === 'directory' ? 'dir' : 'file';
  return { kind, sizeBytes: Number(size) };
}

export async function remoteSha256(peer: PeerNode, path: string): Promise<string> {
  const r = await peer.shell.exec('sha256sum', ['--', path], { timeoutMs: 3600_000, failureMessage: `Could not checksum ${path} on node ${peer.name}.` });
  return r.stdout.trim().split(/\s/)[0] ?? '';
}

export interface GatheredFacts {
  source: SourceFacts;
  dest: DestFacts;
}

/**
 * Looks up on both nodes what the migration plan needs for these devices. Answers
 * that cannot be had (a peer command fails) are errors, never guessed.
 */
export async function gatherPlanFacts(ctx: NodeContext, peer: PeerNode, devices: DomainDevices, mode: MigrationMode, uuid: string): Promise<GatheredFacts> {
  const want = factsWanted(devices, mode, uuid);
  const source: SourceFacts = { files: {}, images: {}, otherUsers: {}, snapshots: 0, checkpoints: 0, pools: {}, tpmStateFiles: [] };
  const dest: DestFacts = { files: {}, resolvable: {}, pools: {}, networks: [], interfaces: [] };

  const virshCount = async (args: string[]) => {
    const r = await ctx.run('virsh', ['-c', ctx.config.libvirtUri, ...args], { timeoutMs: 20_000, failureMessage: `Could not read ${args[0]} of the VM.` });
    return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
  };

  await Promise.all([
    ...want.sourcePaths.map(async (p) => (source.files[p] = await localFileFact(p))),
    ...want.destPaths.map(async (p) => (dest.files[p] = await remoteFileFact(peer, p))),
    virshCount(['snapshot-list', '--domain', uuid, '--name']).then((n) => (source.snapshots = n)),
    virshCount(['checkpoint-list', '--domain', uuid, '--name']).then((n) => (source.checkpoints = n)),
    otherUsers(ctx, uuid, want.sourcePaths).then((u) => (source.otherUsers = u)),
    ...want.hosts.map(async (h) => (dest.resolvable[h] = await resolvesOn(peer, h))),
    ...want.pools.map(async (p) => {
      source.pools[p] = { type: await localPoolType(ctx, p) };
      dest.pools[p] = await remotePool(peer, p);
    }),
    want.networks ? peer.virsh(['net-list', '--name'], { failureMessage: `Could not list the networks of node ${peer.name}.` }).then((r) => (dest.networks = lines(r.stdout))) : null,
    want.interfaces ? peer.shell.exec('ls', ['-1', '/sys/class/net'], { failureMessage: `Could not list the network interfaces of node ${peer.name}.` }).then((r) => (dest.interfaces = lines(r.stdout))) : null,
    want.secrets ? peer.virsh(['secret-list'], { failureMessage: `Could not list the libvirt secrets of node ${peer.name}.` }).then((r) => (dest.secrets = [...r.stdout.matchAll(/^\s*([0-9a-f-]{36})\s/gim)].map((m) => m[1]!.toLowerCase()))) : null,
    want.tpmStateDir ? filesUnder(want.tpmStateDir).then((f) => (source.tpmStateFiles = f)) : null,
  ]);
  for (const f of source.tpmStateFiles) source.files[f] = await localFileFact(f);

  for (const p of want.images) {
    if (source.files[p]?.kind !== 'file') continue;
    const info = await ctx.qemuImg.info(p);
    const st = await stat(p);
    source.images[p] = { format: info.format, virtualBytes: info.virtualBytes, allocatedBytes: st.blocks * 512, fileBytes: st.size, backingFile: info.backingFile } satisfies ImageFact;
  }
  // Hashing is the slow part: only where both sides have a file of the same size.
  await Promise.all(want.identity.map(async (p) => {
    const a = source.files[p];
    const b = dest.files[p];
    if (a?.kind !== 'file' || b?.kind !== 'file' || a.sizeBytes !== b.sizeBytes) return;
    const [mine, theirs] = await Promise.all([localSha256(p), remoteSha256(peer, p)]);
    source.files[p] = { ...a, sha256: mine };
    dest.files[p] = { ...b, sha256: theirs };
  }));
  return { source, dest };
}

const lines = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean);

async function otherUsers(ctx: NodeContext, uuid: string, paths: string[]): Promise<Record<string, string[]>> {
  if (!paths.length) return {};
  const all = await domainList(ctx.conn);
  const out: Record<string, string[]> = {};
  for (const d of all) {
    if (d.description.uuid === uuid) continue;
    for (const disk of d.description.devices.disks) {
      if (disk.path && paths.includes(disk.path)) (out[disk.path] ??= []).push(d.description.name);
    }
    const nv = d.description.devices.nvram?.path;
    if (nv && paths.includes(nv)) (out[nv] ??= []).push(d.description.name);
  }
  return out;
}

async function resolvesOn(peer: PeerNode, host: string): Promise<boolean> {
  const name = host.replace(/^\[|\]$/g, '');
  if (!STORAGE_HOST_PATTERN.test(host)) return false;
  const r = await peer.shell.exec('getent', ['ahosts', name], { check: false, timeoutMs: 15_000 });
  return r.exitCode === 0 && r.stdout.trim() !== '';
}

async function localPoolType(ctx: NodeContext, pool: string): Promise<string> {
  if (!LIBVIRT_NAME.test(pool)) return 'unknown';
  const r = await ctx.run('virsh', ['-c', ctx.config.libvirtUri, 'pool-dumpxml', '--pool', pool], { check: false, timeoutMs: 15_000 });
  return r.exitCode === 0 ? /<pool\s+type=['"]([^'"]+)['"]/.exec(r.stdout)?.[1] ?? 'unknown' : 'unknown';
}

async function remotePool(peer: PeerNode, pool: string): Promise<{ active: boolean; volumes: string[] }> {
  if (!LIBVIRT_NAME.test(pool)) return { active: false, volumes: [] };
  const info = await peer.virsh(['pool-info', '--pool', pool], { check: false });
  if (info.exitCode !== 0) return { active: false, volumes: [] };
  const active = /^State:\s+running/m.test(info.stdout);
  const vols = active ? await peer.virsh(['vol-list', '--pool', pool, '--name'], { check: false }) : null;
  return { active, volumes: vols && vols.exitCode === 0 ? lines(vols.stdout) : [] };
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`Could not list ${dir}: ${describeError(e)}`);
  }
}
