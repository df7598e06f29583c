import { dirname } from 'node:path';
import { isActive, type Vm } from '../../domain/vm.js';
import { describeError } from '../../errors.js';
import type { DomainDescription } from '../../adapters/libvirt/domain-xml.js';
import type { DomainDevices } from '../../domain/domain-devices.js';
import { buildMigrationPlan } from '../../domain/migration-plan/build-plan.js';
import type { MigrationMode, MigrationPlan, PlanItem, PlanOptions } from '../../domain/migration-plan/types.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { PeerNode } from './peer-nodes.js';
import { remoteFileFact, type GatheredFacts } from './plan-facts.js';
import { createdFilesFrom } from './remote-files.js';

export type { MigrationMode } from '../../domain/migration-plan/types.js';

export interface PreflightCheck {
  id: string;
  ok: boolean;
  message: string;
}

/** A file the migration puts on the destination, from the plan's copy / copy-first / carry items. */
export interface MigrationDisk {
  path: string;
  /** Disk target for mirrored disks; null for carried files (NVRAM, TPM state, media). */
  target: string | null;
  decision: 'copy' | 'copy-first' | 'carry';
  /** Plan item id (disk:vda, nvram, tpm:0, cdrom:sda). */
  item: string;
  format: string;
  virtualBytes: number;
  allocatedBytes: number;
  /** Apparent file size: what a copy through SSH reads. */
  fileBytes: number;
  /** Another VM here uses the file too: it is never removed after the move. */
  sharedHere: boolean;
}

export interface PreflightResult {
  go: boolean;
  checks: PreflightCheck[];
  /** Null when the peer could not be asked (the plan needs its answers). */
  plan: MigrationPlan | null;
  disks: MigrationDisk[];
}

export interface PreflightInput {
  vm: Vm;
  description: DomainDescription;
  sourceNode: string;
  peer: PeerNode;
  mode: MigrationMode;
  jobs: JobsRepository;
  /** The job that holds the VM's lock for this migration (its own row is not "another job"). */
  ownJobId: number | null;
  /** The VM's devices as the move sees them (live: running VM plus disks only in its config). */
  devices: DomainDevices;
  options: PlanOptions;
  /** Looks up on both nodes what the plan needs. */
  gatherFacts: () => Promise<GatheredFacts>;
  /** Reaches the peer's libvirtd the way virsh migrate will; null when it works, else why not. */
  probeControlChannel: () => Promise<string | null>;
  /** The destination's own manager on whether it takes incoming migrations (maintenance). */
  destinationTakesVms: () => Promise<{ ok: boolean; message: string }>;
  /** True while libvirt itself runs a job (migration, block copy) on the VM. */
  libvirtHasJob: () => Promise<boolean>;
  /** Live only: how memory and disks travel (TLS or plain), and whether both sides can. */
  checkDataTransport: () => Promise<PreflightCheck>;
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

  const running = input.jobs.runningFor(input.sourceNode, vm.name);
  const busy = running && running.id !== input.ownJobId ? running : null;
  const pending = pendingCleanup(input);
  // libvirt can still be winding down an earlier migration (e.g. its disk copy to a peer
  // whose link was cut) after kvm-ferry's own job has ended.
  const libvirtBusy = !busy && (await input.libvirtHasJob());
  add('vm-idle', !busy && !libvirtBusy && !pending, busy ? `VM ${vm.name} is busy with job #${busy.id} (${busy.kind}).` : libvirtBusy ? `libvirt is still finishing an earlier job on VM ${vm.name} (e.g. a cancelled migration); wait a minute and try again.` : pending ? pending : 'No other job runs on the VM.');
  let plan: MigrationPlan | null = null;
  let disks: MigrationDisk[] = [];

  const blocked = await peer.blockedReason();
  if (blocked) {
    add('peer-reachable', false, blocked);
    return { go: false, checks, plan, disks };
  }
  let hostname: string;
  try {
    await peer.shell.probe();
    const r = await peer.virsh(['hostname'], { check: false, timeoutMs: 10_000 });
    if (r.exitCode !== 0) {
      add('peer-reachable', false, `libvirtd on node ${peer.name} does not answer; start it there (systemctl start libvirtd).`);
      return { go: false, checks, plan, disks };
    }
    hostname = r.stdout.trim();
  } catch (e) {
    add('peer-reachable', false, describeError(e));
    return { go: false, checks, plan, disks };
  }
  add('peer-reachable', true, `Node ${peer.name} (${hostname}) answers over SSH and libvirt.`);
  const takes = await input.destinationTakesVms();
  add('peer-maintenance', takes.ok, takes.message);
  // Independent questions, asked at once (they share one SSH connection).
  const [linkProblem, names, uuids, facts, mem, caps, transport] = await Promise.all([
    input.probeControlChannel(),
    peer.virsh(['list', '--all', '--name']),
    peer.virsh(['list', '--all', '--uuid']),
    input.gatherFacts().catch((e: unknown) => new Error(describeError(e))),
    mode === 'live' ? peer.virsh(['nodememstats']) : null,
    peer.virsh(['capabilities']),
    mode === 'live' ? input.checkDataTransport() : null,
  ]);
  add('libvirt-link', linkProblem === null, linkProblem === null ? `libvirt on this node reaches ${peer.name}'s libvirtd (${peer.libvirtUri.split('?')[0]}).` : `libvirt on this node cannot reach ${peer.name}'s libvirtd for the migration: ${linkProblem}`);
  if (transport) checks.push(transport);

  const has = (out: string, v: string) => out.split('\n').some((l) => l.trim() === v);
  add('name-free', !has(names.stdout, vm.name), has(names.stdout, vm.name) ? `A VM named ${vm.name} already exists on node ${peer.name}.` : `No VM named ${vm.name} on node ${peer.name}.`);
  add('uuid-free', !has(uuids.stdout, vm.uuid), has(uuids.stdout, vm.uuid) ? `A VM with UUID ${vm.uuid} already exists on node ${peer.name}.` : 'The UUID is free there.');

  if (facts instanceof Error) {
    add('devices', false, `Could not look at the VM's devices on both nodes: ${facts.message}`);
  } else {
    plan = buildMigrationPlan({ mode, vm: vm.name, source: input.sourceNode, dest: peer.name, devices: input.devices, sourceFacts: facts.source, destFacts: facts.dest, options: input.options });
    disks = filesToMove(plan.items, facts);
    const refused = plan.items.filter((i) => i.decision === 'refuse');
    const claimed = pendingPathCleanup(input, disks);
    add('devices', refused.length === 0 && !claimed, refused.length
      ? `${refused.length === 1 ? 'One device stops' : `${refused.length} devices stop`} the move: ${refused.map((i) => `${i.reason}${i.fix ? ` ${i.fix}` : ''}`).join(' ')}`
      : claimed ?? describePlan(plan, mode));
  }
  const space = disks.length ? await spaceProblems(peer, disks) : [];
  if (disks.length) add('disk-space', space.length === 0, space.length ? `Not enough disk space: ${space.join('; ')}.` : `Node ${peer.name} has room for the disks.`);

  if (mem) {
    const kib = (k: string) => Number(new RegExp(`^${k}\\s*:\\s*(\\d+)`, 'm').exec(mem.stdout)?.[1] ?? 0);
    const available = kib('free') + kib('cached') + kib('buffers');
    const need = vm.memoryMiB * 1024 + MEMORY_MARGIN_KIB;
    add('memory', available >= need, available >= need ? `Node ${peer.name} has ${Math.floor(available / 1024)} MiB of RAM available.` : `Node ${peer.name} has only ${Math.floor(available / 1024)} MiB of RAM available; ${vm.name} needs ${vm.memoryMiB} MiB.`);
  }

  const { arch, emulator } = input.description;
  const archOk = !arch || caps.stdout.includes(`<arch name='${arch}'>`) || caps.stdout.includes(`<arch name="${arch}">`);
  const emuListed = !emulator || caps.stdout.includes(`<emulator>${emulator}</emulator>`);
  // libvirt's capabilities name only each architecture's default binary; a VM may name another
  // (a newer QEMU beside the distribution's, qemu-kvm, a build of the admin's): it must exist there.
  const emuFile = !emuListed && emulator ? await remoteFileFact(peer, emulator).catch(() => null) : null;
  const emuOk = emuListed || emuFile?.kind === 'file';
  add('hypervisor', archOk && emuOk, archOk && emuOk ? `Node ${peer.name} runs ${arch ?? 'the same architecture'} with ${emulator ?? 'the same emulator'}.` : `Node ${peer.name} lacks ${!archOk ? `the ${arch} architecture` : `the emulator ${emulator}`}; install the same QEMU there.`);

  return { go: checks.every((c) => c.ok), checks, plan, disks };
}

/** A failed migration whose leftovers on some node still wait for removal blocks a new one for the VM. */
function pendingCleanup(input: PreflightInput): string | null {
  const job = input.jobs.withPendingCleanup().find((j) => {
    const l = j.result?.leftovers as { uuid?: string; vm?: string } | undefined;
    return l?.uuid === input.vm.uuid || j.vm === input.vm.name;
  });
  if (!job) return null;
  const files = createdFilesFrom((job.result?.leftovers as { created?: unknown } | undefined)?.created).map((f) => f.path);
  return `What failed migration #${job.id} left on node ${String((job.result?.leftovers as { peer?: string }).peer ?? '?')}${files.length ? ` (${files.join(', ')})` : ''} is not removed yet; kvm-ferry retries every few seconds — wait until it is, then migrate.`;
}

/** Another VM's failed migration to the same node left a file at a path this one needs. */
function pendingPathCleanup(input: PreflightInput, disks: MigrationDisk[]): string | null {
  const wanted = new Set(disks.map((d) => d.path));
  for (const j of input.jobs.withPendingCleanup()) {
    const l = j.result?.leftovers as { peer?: string; created?: unknown } | undefined;
    if (l?.peer !== input.peer.name) continue;
    const hit = createdFilesFrom(l.created).find((f) => wanted.has(f.path));
    if (hit) return `${hit.path} on node ${input.peer.name} is what failed migration #${j.id} left there and is not removed yet; kvm-ferry retries every few seconds — wait until it is, then migrate.`;
  }
  return null;
}

function filesToMove(items: PlanItem[], facts: GatheredFacts): MigrationDisk[] {
  const out: MigrationDisk[] = [];
  for (const i of items) {
    if ((i.decision !== 'copy' && i.decision !== 'copy-first' && i.decision !== 'carry') || !i.path) continue;
    const paths = i.id.startsWith('tpm:') ? facts.source.tpmStateFiles : [i.path];
    for (const path of paths) {
      const image = facts.source.images[path];
      const size = facts.source.files[path]?.sizeBytes ?? 0;
      out.push({
        path, target: i.decision === 'carry' ? null : i.target, decision: i.decision, item: i.id, format: image?.format ?? i.format ?? 'raw',
        virtualBytes: image?.virtualBytes ?? size, allocatedBytes: image?.allocatedBytes ?? size, fileBytes: image?.fileBytes ?? size,
        sharedHere: (facts.source.otherUsers[path] ?? []).length > 0,
      });
    }
  }
  return out;
}

function describePlan(plan: MigrationPlan, mode: MigrationMode): string {
  const count = (d: string) => plan.items.filter((i) => i.decision === d).length;
  const parts = [
    count('copy') ? `${count('copy')} disk(s) ${mode === 'live' ? 'mirrored while the VM runs' : 'copied through SSH and checked'}` : null,
    count('copy-first') ? `${count('copy-first')} read-only disk(s) copied first` : null,
    count('carry') ? `${count('carry')} file(s) carried over` : null,
    count('stream') ? `${count('stream')} item(s) in the migration stream` : null,
    count('present') ? `${count('present')} already identical there` : null,
    count('shared') ? `${count('shared')} on shared storage` : null,
    count('eject') ? `${count('eject')} media ejected for the move` : null,
  ].filter(Boolean);
  return parts.length ? `Every device can move: ${parts.join(', ')}.` : 'Every device can move; there is nothing to copy.';
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
