import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isActive, type Vm } from '../../domain/vm.js';
import { describeError } from '../../errors.js';
import type { QemuImg } from '../../adapters/qemu-img/qemu-img.js';
import type { DomainDescription } from '../../adapters/libvirt/domain-xml.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { PeerNode } from './peer-nodes.js';

export type MigrationMode = 'live' | 'offline';

export interface PreflightCheck {
  id: string;
  ok: boolean;
  message: string;
}

export interface MigrationDisk {
  path: string;
  format: string;
  virtualBytes: number;
  allocatedBytes: number;
  /** Apparent file size: what an offline copy reads. */
  fileBytes: number;
}

export interface PreflightResult {
  go: boolean;
  checks: PreflightCheck[];
  disks: MigrationDisk[];
}

export interface PreflightInput {
  vm: Vm;
  description: DomainDescription;
  sourceNode: string;
  peer: PeerNode;
  mode: MigrationMode;
  jobs: JobsRepository;
  qemuImg: QemuImg;
  /** Reaches the peer's libvirtd the way virsh migrate will; null when it works, else why not. */
  probeControlChannel: () => Promise<string | null>;
  /** True while libvirt itself runs a job (migration, block copy) on the VM. */
  libvirtHasJob: () => Promise<boolean>;
}

const SPACE_MARGIN_BYTES = 256 * 1024 ** 2;
const MEMORY_MARGIN_KIB = 128 * 1024;

/**
 * Everything that can be known before a migration starts, each check with its own
 * sentence. Remote facts come from the peer's own virsh, stat and df over ssh2.
 */
export async function runPreflight(input: PreflightInput): Promise<PreflightResult> {
  const { vm, peer, mode } = input;
  const checks: PreflightCheck[] = [];
  const add = (id: string, ok: boolean, message: string) => checks.push({ id, ok, message });

  if (mode === 'live') add('vm-state', isActive(vm.state), isActive(vm.state) ? `VM ${vm.name} is running.` : `VM ${vm.name} is not running; use offline migration for a shut-off VM.`);
  else add('vm-state', vm.state === 'shut-off', vm.state === 'shut-off' ? `VM ${vm.name} is shut off.` : `VM ${vm.name} is running; shut it down for an offline migration, or migrate it live.`);

  const busy = input.jobs.runningFor(input.sourceNode, vm.name);
  // libvirt can still be winding down an earlier migration (e.g. its disk copy to a peer
  // whose link was cut) after kvm-ferry's own job has ended.
  const libvirtBusy = !busy && (await input.libvirtHasJob());
  add('vm-idle', !busy && !libvirtBusy, busy ? `VM ${vm.name} is busy with job #${busy.id} (${busy.kind}).` : libvirtBusy ? `libvirt is still finishing an earlier job on VM ${vm.name} (e.g. a cancelled migration); wait a minute and try again.` : 'No other job runs on the VM.');

  const disks = await localDisks(input, add);

  const blocked = await peer.blockedReason();
  if (blocked) {
    add('peer-reachable', false, blocked);
    return { go: false, checks, disks };
  }
  let hostname: string;
  try {
    await peer.shell.probe();
    const r = await peer.virsh(['hostname'], { check: false, timeoutMs: 10_000 });
    if (r.exitCode !== 0) {
      add('peer-reachable', false, `libvirtd on node ${peer.name} does not answer; start it there (systemctl start libvirtd).`);
      return { go: false, checks, disks };
    }
    hostname = r.stdout.trim();
  } catch (e) {
    add('peer-reachable', false, describeError(e));
    return { go: false, checks, disks };
  }
  add('peer-reachable', true, `Node ${peer.name} (${hostname}) answers over SSH and libvirt.`);
  // Independent questions, asked at once (they share one SSH connection).
  const [linkProblem, names, uuids, existing, space, mem, caps] = await Promise.all([
    input.probeControlChannel(),
    peer.virsh(['list', '--all', '--name']),
    peer.virsh(['list', '--all', '--uuid']),
    disks.length ? peer.shell.exec('stat', ['-c', '%n', '--', ...disks.map((d) => d.path)], { check: false }) : null,
    disks.length ? spaceProblems(peer, disks) : [],
    mode === 'live' ? peer.virsh(['nodememstats']) : null,
    peer.virsh(['capabilities']),
  ]);
  add('libvirt-link', linkProblem === null, linkProblem === null ? `libvirt on this node reaches ${peer.name}'s libvirtd (${peer.libvirtUri.split('?')[0]}).` : `libvirt on this node cannot reach ${peer.name}'s libvirtd for the migration: ${linkProblem}`);

  const has = (out: string, v: string) => out.split('\n').some((l) => l.trim() === v);
  add('name-free', !has(names.stdout, vm.name), has(names.stdout, vm.name) ? `A VM named ${vm.name} already exists on node ${peer.name}.` : `No VM named ${vm.name} on node ${peer.name}.`);
  add('uuid-free', !has(uuids.stdout, vm.uuid), has(uuids.stdout, vm.uuid) ? `A VM with UUID ${vm.uuid} already exists on node ${peer.name}.` : 'The UUID is free there.');

  if (existing) {
    const taken = existing.stdout.split('\n').filter(Boolean);
    add('paths-free', taken.length === 0, taken.length ? `Disk file(s) already exist on node ${peer.name}: ${taken.join(', ')}; move them away first.` : 'The disk paths are free there.');
    add('disk-space', space.length === 0, space.length ? `Not enough disk space: ${space.join('; ')}.` : `Node ${peer.name} has room for the disks.`);
  }

  if (mem) {
    const kib = (k: string) => Number(new RegExp(`^${k}\\s*:\\s*(\\d+)`, 'm').exec(mem.stdout)?.[1] ?? 0);
    const available = kib('free') + kib('cached') + kib('buffers');
    const need = vm.memoryMiB * 1024 + MEMORY_MARGIN_KIB;
    add('memory', available >= need, available >= need ? `Node ${peer.name} has ${Math.floor(available / 1024)} MiB of RAM available.` : `Node ${peer.name} has only ${Math.floor(available / 1024)} MiB of RAM available; ${vm.name} needs ${vm.memoryMiB} MiB.`);
  }

  const { arch, emulator } = input.description;
  const archOk = !arch || caps.stdout.includes(`<arch name='${arch}'>`) || caps.stdout.includes(`<arch name="${arch}">`);
  const emuOk = !emulator || caps.stdout.includes(`<emulator>${emulator}</emulator>`);
  add('hypervisor', archOk && emuOk, archOk && emuOk ? `Node ${peer.name} runs ${arch ?? 'the same architecture'} with ${emulator ?? 'the same emulator'}.` : `Node ${peer.name} lacks ${!archOk ? `the ${arch} architecture` : `the emulator ${emulator}`}; install the same QEMU there.`);

  return { go: checks.every((c) => c.ok), checks, disks };
}

async function localDisks(input: PreflightInput, add: (id: string, ok: boolean, m: string) => void): Promise<MigrationDisk[]> {
  const out: MigrationDisk[] = [];
  const problems: string[] = [];
  for (const d of input.vm.disks.filter((x) => x.device === 'disk')) {
    if (d.type !== 'file' || !d.path || !d.path.startsWith('/')) {
      problems.push(`${d.target} is not a local file (${d.type})`);
      continue;
    }
    try {
      const info = await input.qemuImg.info(d.path);
      if (info.backingFile) {
        problems.push(`${d.path} has a backing file (${info.backingFile}); flatten it first (qemu-img convert) — backing chains are not migrated`);
        continue;
      }
      if (info.format !== 'qcow2' && info.format !== 'raw') {
        problems.push(`${d.path} is ${info.format}; only qcow2 and raw are migrated`);
        continue;
      }
      const fileBytes = (await stat(d.path)).size;
      out.push({ path: d.path, format: info.format, virtualBytes: info.virtualBytes, allocatedBytes: d.allocatedBytes ?? info.actualBytes ?? info.virtualBytes, fileBytes });
    } catch (e) {
      problems.push(describeError(e));
    }
  }
  const how = input.mode === 'live' ? 'while the VM runs' : 'through SSH, then checked';
  add('disks-supported', problems.length === 0, problems.length ? `Disk(s) cannot be migrated: ${problems.join('; ')}.` : `${out.length} disk(s) will be copied ${how}.`);
  return out;
}

async function spaceProblems(peer: PeerNode, disks: MigrationDisk[]): Promise<string[]> {
  const needByDir = new Map<string, number>();
  for (const d of disks) needByDir.set(dirname(d.path), (needByDir.get(dirname(d.path)) ?? 0) + d.allocatedBytes);
  const problems: string[] = [];
  for (const [dir, need] of needByDir) {
    const r = await peer.shell.exec('df', ['-B1', '--output=avail', '--', dir], { check: false });
    const avail = Number(r.stdout.trim().split('\n').pop());
    if (r.exitCode !== 0 || !Number.isFinite(avail)) {
      problems.push(`directory ${dir} does not exist on node ${peer.name}; create it there`);
    } else if (avail < need + SPACE_MARGIN_BYTES) {
      problems.push(`${dir} on node ${peer.name} has ${fmt(avail)} free, the disks need ${fmt(need + SPACE_MARGIN_BYTES)}`);
    }
  }
  return problems;
}

function fmt(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.ceil(bytes / 1024 ** 2)} MiB`;
}
