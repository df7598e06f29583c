import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { http, inNode, LAB_SCRIPT, tryInNode, type LabNode } from './lab.js';

/**
 * VMs built on a lab node the way admins build them — `virsh define` of hand-written
 * domain XML, `virsh attach-disk --persistent`, `virsh change-media`, `qemu-img create`,
 * OVMF from Debian's ovmf package — and byte-level checks of their files with qemu-io,
 * so a migration test asserts what is on the destination's disk, not what a state says.
 *
 * Every command runs inside the node (scripts/lab.sh exec): /var/lib/kvm-ferry,
 * /var/lib/libvirt, /var/cache/kvm-ferry, /var/log/libvirt are the node's own;
 * /usr/share and /tmp are the host's (so OVMF is the same file on every node, and the
 * XML written under /tmp here is readable from inside every node).
 */

export const GUEST = '/var/cache/kvm-ferry/guest';
export const IMAGES = '/var/lib/kvm-ferry/images';
export const NVRAM_DIR = '/var/lib/libvirt/qemu/nvram';
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const MiB = 1024 * 1024;

const xmlDir = mkdtempSync(join(tmpdir(), 'kf-vm-shapes-'));
/** Call from afterAll: removes the XML files defineVm wrote (vitest workers may end without an exit event). */
export const removeShapeFiles = (): void => rmSync(xmlDir, { recursive: true, force: true });

export const virsh = (node: string, ...args: string[]): string => inNode(node, 'virsh', '-q', '-c', 'qemu:///system', ...args);
export const tryVirsh = (node: string, ...args: string[]) => tryInNode(node, 'virsh', '-q', '-c', 'qemu:///system', ...args);

/**
 * `virsh change-media --insert --live --config`, as an admin does it, tried again for a few
 * seconds: right after `virsh start` the guest's firmware may still hold the tray.
 */
export async function insertMedia(node: string, vm: string, target: string, iso: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 15; i++) {
    const r = tryVirsh(node, 'change-media', vm, target, iso, '--insert', '--live', '--config');
    if (r.ok) return;
    last = r.out;
    await new Promise((res) => setTimeout(res, 1000));
  }
  throw new Error(`change-media ${vm} ${target} on ${node} kept failing: ${last}`);
}
export const sh = (node: string, script: string): string => inNode(node, 'bash', '-c', script);

export interface DiskSpec {
  path: string;
  format: 'qcow2' | 'raw';
  target: string;
  readonly?: boolean;
  shareable?: boolean;
}

export interface VmShape {
  name: string;
  memoryMiB?: number;
  /** q35 for UEFI guests (what virt-install picks), pc otherwise. */
  machine?: 'pc' | 'q35';
  disks?: DiskSpec[];
  /** CD-ROM drives: null = empty tray. */
  cdroms?: { target: string; path: string | null }[];
  /** Direct kernel boot. */
  kernel?: { kernel: string; initrd: string; cmdline: string };
  /** UEFI: OVMF code (read-only pflash) + a per-VM NVRAM made from the vars template. */
  uefi?: { nvram: string };
  /** The QEMU binary libvirt runs (default Debian 12's /usr/bin/qemu-system-x86_64). */
  emulator?: string;
}

export const nvramPath = (vm: string) => `${NVRAM_DIR}/${vm}_VARS.fd`;
export const serialLog = (vm: string) => `/var/log/libvirt/qemu/${vm}-serial.log`;

/** Domain XML close to what virt-install / virt-manager write, for TCG (domain type qemu). */
export function domainXml(s: VmShape): string {
  const machine = s.machine ?? (s.uefi ? 'q35' : 'pc');
  const cdBus = machine === 'q35' ? 'sata' : 'ide';
  const os = [
    `<type arch='x86_64' machine='${machine}'>hvm</type>`,
    s.uefi ? `<loader readonly='yes' type='pflash'>${OVMF_CODE}</loader>` : '',
    s.uefi ? `<nvram template='${OVMF_VARS}'>${s.uefi.nvram}</nvram>` : '',
    s.kernel ? `<kernel>${s.kernel.kernel}</kernel><initrd>${s.kernel.initrd}</initrd><cmdline>${s.kernel.cmdline}</cmdline>` : "<boot dev='hd'/>",
  ].join('');
  const disks = (s.disks ?? []).map((d) => `
    <disk type='file' device='disk'>
      <driver name='qemu' type='${d.format}'${d.shareable ? " cache='none'" : ''}/>
      <source file='${d.path}'/>
      <target dev='${d.target}' bus='virtio'/>${d.readonly ? '<readonly/>' : ''}${d.shareable ? '<shareable/>' : ''}
    </disk>`).join('');
  const cdroms = (s.cdroms ?? []).map((c) => `
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>${c.path ? `<source file='${c.path}'/>` : ''}
      <target dev='${c.target}' bus='${cdBus}'/>
      <readonly/>
    </disk>`).join('');
  return `<domain type='qemu'>
  <name>${s.name}</name>
  <memory unit='MiB'>${s.memoryMiB ?? 128}</memory>
  <vcpu>1</vcpu>
  <os>${os}</os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${s.emulator ?? '/usr/bin/qemu-system-x86_64'}</emulator>${disks}${cdroms}
    <serial type='pty'><log file='${serialLog(s.name)}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>
`;
}

/** `virsh define` of the shape's XML on the node. */
export function defineVm(node: string, s: VmShape): void {
  const file = join(xmlDir, `${node}-${s.name}.xml`);
  writeFileSync(file, domainXml(s));
  virsh(node, 'define', file);
}

/** The bootable test guest as the VM's own system disk (a full copy: no backing chain). */
export function copyGuestDisk(node: string, path: string): void {
  inNode(node, 'cp', '--sparse=always', `${GUEST}/guest.qcow2`, path);
}

export function createImage(node: string, path: string, format: 'qcow2' | 'raw', sizeMiB: number): void {
  inNode(node, 'qemu-img', 'create', '-q', '-f', format, path, `${sizeMiB}M`);
}

/** Writes `pattern` over [offset, offset+len) with qemu-io (the image must not be in use). */
export function writePattern(node: string, format: string, path: string, pattern: number, offsetMiB = 0, lenMiB = 16): void {
  const out = inNode(node, 'qemu-io', '-f', format, '-c', `write -P 0x${pattern.toString(16)} ${offsetMiB}M ${lenMiB}M`, path);
  if (!out.includes(`wrote ${lenMiB * MiB}/${lenMiB * MiB} bytes`)) throw new Error(`qemu-io write on ${node}:${path} said: ${out}`);
}

export interface PatternRead {
  ok: boolean;
  out: string;
}

/**
 * Reads [offset, offset+len) and checks every byte is `pattern` (qemu-io read -P).
 * `shared` (-U) reads an image a running QEMU holds; otherwise the image must be free
 * (destroy the VM first: QEMU flushes its qcow2 metadata on SIGTERM).
 */
export function readPattern(node: string, format: string, path: string, pattern: number, offsetMiB = 0, lenMiB = 16, shared = false): PatternRead {
  const r = tryInNode(node, 'qemu-io', '-f', format, '-r', ...(shared ? ['-U'] : []), '-c', `read -P 0x${pattern.toString(16)} ${offsetMiB}M ${lenMiB}M`, path);
  const ok = r.ok && r.out.includes(`read ${lenMiB * MiB}/${lenMiB * MiB} bytes`) && !/verification failed|error|fail/i.test(r.out);
  return { ok, out: `${node}:${path}: ${r.out.trim()}` };
}

export const exists = (node: string, path: string): boolean => tryInNode(node, 'test', '-e', path).ok;
export const sha256 = (node: string, path: string): string => inNode(node, 'sha256sum', path).split(/\s+/)[0]!;
export const domains = (node: string): string[] => virsh(node, 'list', '--all', '--name').split('\n').map((x) => x.trim()).filter(Boolean);
export const domstate = (node: string, vm: string): string => {
  const r = tryVirsh(node, 'domstate', '--reason', vm);
  return r.ok ? r.out.trim() : 'absent';
};

/** Source path of a disk target as libvirt has it (the running definition): '-' for an empty tray. */
export function blkSource(node: string, vm: string, target: string, inactive = false): string | null {
  const out = virsh(node, 'domblklist', vm, '--details', ...(inactive ? ['--inactive'] : []));
  for (const line of out.split('\n')) {
    const [, , tgt, src] = line.trim().split(/\s+/);
    if (tgt === target) return src ?? null;
  }
  return null;
}

export const counterOn = (node: string, vm: string): number => {
  const m = [...tryInNode(node, 'cat', serialLog(vm)).out.matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};

/** Removes a VM and its files from a node, whatever state it is in. */
export function removeVm(node: string, vm: string, files: string[] = []): void {
  tryVirsh(node, 'destroy', vm);
  tryVirsh(node, 'undefine', vm, '--nvram', '--snapshots-metadata');
  tryVirsh(node, 'undefine', vm);
  if (files.length) tryInNode(node, 'rm', '-f', '--', ...files);
}

// ---------------------------------------------------------------- the manager's API

export interface PlanItem {
  id: string;
  element: string;
  decision: string;
  path: string | null;
  target: string | null;
  format: string | null;
  reason: string;
  fix: string | null;
  fixes: string[];
  bytes: number;
}

export interface CheckResult {
  status: number;
  json: any;
  go: boolean;
  items: PlanItem[];
  /** id → decision, for one readable assertion. */
  decisions: Record<string, string>;
  item(id: string): PlanItem;
}

export interface MigrateBody {
  to: string;
  mode?: 'live' | 'offline';
  ejectMedia?: true;
  copyMedia?: true;
}

export async function migrateCheck(from: LabNode, vm: string, body: MigrateBody): Promise<CheckResult> {
  const r = await http(from.url, 'POST', `/api/nodes/${from.name}/vms/${vm}/migrate/check`, body);
  const items: PlanItem[] = r.json?.plan?.items ?? [];
  const decisions = Object.fromEntries(items.map((i) => [i.id, i.decision]));
  return {
    status: r.status, json: r.json, go: r.json?.go === true, items, decisions,
    item(id: string) {
      const it = items.find((i) => i.id === id);
      if (!it) throw new Error(`pre-flight of ${vm} has no plan item ${id}; it has: ${JSON.stringify(decisions)} (response ${r.status}: ${JSON.stringify(r.json).slice(0, 1500)})`);
      return it;
    },
  };
}

/** Starts a migration job (202) or returns the refusal (409). */
export async function startMigration(from: LabNode, vm: string, body: MigrateBody): Promise<{ status: number; json: any; jobId: number | null }> {
  const r = await http(from.url, 'POST', `/api/nodes/${from.name}/vms/${vm}/migrate`, body);
  return { ...r, jobId: typeof r.json?.job?.id === 'number' ? r.json.job.id : null };
}

export async function getJob(node: LabNode, id: number, waitSec?: number): Promise<any> {
  return (await http(node.url, 'GET', `/api/jobs/${id}${waitSec ? `?wait=${waitSec}` : ''}`)).json;
}

const execFileP = promisify(execFile);
async function existsAll(node: string, paths: string[]): Promise<boolean[]> {
  // One nsenter for all paths: prints 1/0 per path.
  const script = 'for f in "$@"; do if [ -e "$f" ]; then printf 1; else printf 0; fi; done';
  const r = await execFileP('bash', [LAB_SCRIPT, 'exec', node, 'bash', '-c', script, 'x', ...paths], { encoding: 'utf8', timeout: 30_000 });
  return [...r.stdout.trim()].map((c) => c === '1');
}

export interface WatchedJob {
  job: any;
  /** Sentences describing every sample where a watched source file was gone before the job reached its cleanup step. */
  earlyDeletions: string[];
  samples: number;
}

/**
 * Follows a migration job to its end while watching the source's files: each round
 * first looks at the files, then asks the job; a file seen missing while the job
 * afterwards still reports a step before 'cleanup' was deleted before the destination
 * was verified. (Sound in that order: the step can only move forward.)
 */
export async function followJob(from: LabNode, jobId: number, watch: string[], timeoutMs = 180_000): Promise<WatchedJob> {
  const early: string[] = [];
  const deadline = Date.now() + timeoutMs;
  let samples = 0;
  for (;;) {
    const present = watch.length ? await existsAll(from.name, watch) : [];
    const job = await getJob(from, jobId);
    samples++;
    const gone = watch.filter((_, i) => !present[i]);
    const step = job.progress?.step;
    if (gone.length && job.state === 'running' && step !== 'cleanup' && step !== 'done') {
      early.push(`${gone.join(', ')} gone from ${from.name} while job #${jobId} was at step ${step}`);
    }
    if (job.state !== 'running') return { job, earlyDeletions: early, samples };
    if (Date.now() > deadline) throw new Error(`job #${jobId} still running after ${timeoutMs} ms: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The refusal sentence an API 409 carries, for one assertion with context. */
export const refusal = (r: { status: number; json: any }): string => `${r.status} ${r.json?.error?.message ?? JSON.stringify(r.json)}`;
