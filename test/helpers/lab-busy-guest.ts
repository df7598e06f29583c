import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNode, tryInNode, type LabNode } from './lab.js';
import { createImage, defineVm, removeVm, serialLog, virsh } from './lab-vm-shapes.js';

/**
 * The busy test guest (scripts/build-guest.sh --variant busy) on lab nodes: direct kernel
 * boot of its kernel and initrd, with ferry_dirty=<MiB> / ferry_write=1 on the command line,
 * so one image serves every shape. A node's /var/cache/kvm-ferry is its own: the host's
 * build is copied into each node (through /tmp, which nodes share with the host), the same
 * bytes on both, as a live move of a direct-kernel-boot VM requires.
 */
export const BUSY_GUEST_HOST = process.env.KVM_FERRY_BUSY_GUEST_DIR ?? '/var/cache/kvm-ferry/guest-busy';
export const BUSY_GUEST = '/var/cache/kvm-ferry/guest-busy';
const BUILD = fileURLToPath(new URL('../../scripts/build-guest.sh', import.meta.url));

/** Builds the busy variant on the host if needed (idempotent, a stat when fresh) and copies it into every node. */
export function stageBusyGuest(nodes: LabNode[]): void {
  execFileSync('bash', [BUILD, '--variant', 'busy', BUSY_GUEST_HOST], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  const stage = mkdtempSync(join(tmpdir(), 'kf-busy-guest-'));
  try {
    for (const f of ['vmlinuz', 'initrd.img']) execFileSync('cp', [join(BUSY_GUEST_HOST, f), join(stage, f)]);
    execFileSync('chmod', ['-R', 'a+rX', stage]);
    for (const n of nodes) inNode(n.name, 'bash', '-c', `mkdir -p ${BUSY_GUEST} && cp ${stage}/vmlinuz ${stage}/initrd.img ${BUSY_GUEST}/`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

export interface BusyVm {
  name: string;
  memoryMiB: number;
  /** ferry_dirty=<MiB>: rewrites that much memory in a loop. */
  dirtyMiB?: number;
  /** ferry_write=1 with a raw data disk of this size as vda. */
  writeDiskMiB?: number;
  /** ferry_write_ms: pause between blocks. */
  writeMs?: number;
  /** Another QEMU than Debian 12's 7.2, e.g. QEMU10 (a live memory copy of an emulated guest is sound from 9.0 on). */
  emulator?: string;
}

/** QEMU 10 from bookworm-backports, unpacked by scripts/install-qemu-backports.sh (install-pkgs --test). */
export const QEMU10 = '/opt/kvm-ferry-qemu10/bin/qemu-system-x86_64';

export const dataDisk = (vm: string) => `/var/lib/kvm-ferry/images/${vm}-data.raw`;

/** Defines and starts the VM on the node (removing any leftover of the same name first). */
export function startBusyVm(node: string, vm: BusyVm): void {
  removeVm(node, vm.name, [dataDisk(vm.name)]);
  tryInNode(node, 'rm', '-f', serialLog(vm.name));
  const args = ['console=ttyS0'];
  if (vm.dirtyMiB) args.push(`ferry_dirty=${vm.dirtyMiB}`);
  if (vm.writeDiskMiB) {
    args.push('ferry_write=1');
    if (vm.writeMs !== undefined) args.push(`ferry_write_ms=${vm.writeMs}`);
    createImage(node, dataDisk(vm.name), 'raw', vm.writeDiskMiB);
  }
  defineVm(node, {
    name: vm.name,
    memoryMiB: vm.memoryMiB,
    kernel: { kernel: `${BUSY_GUEST}/vmlinuz`, initrd: `${BUSY_GUEST}/initrd.img`, cmdline: args.join(' ') },
    disks: vm.writeDiskMiB ? [{ path: dataDisk(vm.name), format: 'raw', target: 'vda' }] : [],
    ...(vm.emulator ? { emulator: vm.emulator } : {}),
  });
  virsh(node, 'start', vm.name);
}

const serial = (node: string, vm: string) => tryInNode(node, 'cat', serialLog(vm)).out;
const lastNumber = (text: string, re: RegExp): number => {
  const m = [...text.matchAll(re)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};
export const counterOf = (node: string, vm: string) => lastNumber(serial(node, vm), /kvm-ferry-counter (\d+)/g);
export const lastAck = (node: string, vm: string) => lastNumber(serial(node, vm), /kvm-ferry-ack (\d+)/g);
export const firstAck = (node: string, vm: string) => {
  const m = /kvm-ferry-ack (\d+)/.exec(serial(node, vm));
  return m ? Number(m[1]) : 0;
};
/** Lines saying the guest's writer or its modules failed. */
export const guestErrors = (node: string, vm: string) => serial(node, vm).split('\n').filter((l) => /kvm-ferry-write-error|insmod .* failed/.test(l));
/** Kernel lines saying the guest's memory went bad (what a lost memory write looked like on the lab). */
export const guestOopses = (node: string, vm: string) => serial(node, vm).split('\n').filter((l) => /Oops|BUG:|Kernel panic|general protection fault|Unable to handle/.test(l));
/** The last n lines of the serial log; withoutAcks drops the writer's ack lines (to show an oops). */
export const serialTail = (node: string, vm: string, n = 8, withoutAcks = false) =>
  serial(node, vm).trim().split('\n').filter((l) => !withoutAcks || !/^kvm-ferry-(ack|counter) /.test(l)).slice(-n).join(' | ');

export interface BlockCheck {
  checked: number;
  /** Block numbers whose bytes are not "kvm-ferry-block <N>", as ranges "a-b" (first 20 ranges). */
  bad: string[];
  badCount: number;
  /** What the first bad block starts with, and the image's format, for the failure message. */
  detail: string;
}

/**
 * Reads blocks 1..upTo of the raw disk on the node (the VM must be stopped) and checks each
 * holds its own number: the bytes on the disk, not a state.
 */
export function checkBlocks(node: string, vm: string, upTo: number): BlockCheck {
  const dir = mkdtempSync(join(tmpdir(), 'kf-blocks-'));
  try {
    execFileSync('chmod', ['0777', dir]);
    const out = join(dir, 'blocks.raw');
    // qemu-img convert gives the guest-visible bytes whatever format the destination chose.
    const info = inNode(node, 'qemu-img', 'info', '--output=json', dataDisk(vm));
    inNode(node, 'qemu-img', 'convert', '-O', 'raw', dataDisk(vm), out);
    const buf = readFileSync(out);
    const badNums: number[] = [];
    for (let n = 1; n <= upTo; n++) {
      const want = `kvm-ferry-block ${String(n).padStart(10, '0')}\n`;
      const block = buf.subarray(n * 4096, (n + 1) * 4096);
      // The block is the 27-byte line repeated: check its first and last whole copies.
      const L = want.length;
      const last = Math.floor(4096 / L) - 1;
      if (block.length < 4096 || block.toString('latin1', 0, L) !== want || block.toString('latin1', last * L, last * L + L) !== want) {
        badNums.push(n);
      }
    }
    const ranges: string[] = [];
    for (const n of badNums) {
      const last = ranges[ranges.length - 1];
      const [a, b] = (last ?? '').split('-').map(Number);
      if (last && (b ?? a) === n - 1) ranges[ranges.length - 1] = `${a}-${n}`;
      else ranges.push(String(n));
    }
    const first = badNums[0];
    const detail = `format ${JSON.parse(info).format}; first bad block starts ${first === undefined ? '-' : JSON.stringify(buf.toString('latin1', first * 4096, first * 4096 + 30))}`;
    return { checked: upTo, bad: ranges.slice(0, 20), badCount: badNums.length, detail };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SseEvent {
  state: string;
  phase: string | null;
  percent: number | null;
  message: string;
}

/** Follows a job's SSE stream to its end event (bounded); returns every event seen. */
export async function followSse(node: LabNode, jobId: number, timeoutMs: number): Promise<SseEvent[]> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const r = await fetch(`${node.url}/api/jobs/${jobId}/events`, { signal: ctl.signal, headers: { accept: 'text/event-stream' } });
    if (!r.ok || !r.body) throw new Error(`SSE for job ${jobId} answered ${r.status}`);
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!data) continue;
        const job = JSON.parse(data);
        events.push({ state: job.state, phase: job.progress?.phase ?? null, percent: typeof job.progress?.percent === 'number' ? job.progress.percent : null, message: job.message ?? '' });
        if (job.state !== 'running') return events;
      }
    }
    return events;
  } catch (e) {
    if (ctl.signal.aborted) throw new Error(`job ${jobId} did not end within ${timeoutMs} ms; last events: ${JSON.stringify(events.slice(-5))}`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
