import { readFile } from 'node:fs/promises';
import { describeError } from '../../errors.js';
import { buildDirtyRateCalcArgs, buildDirtyRateStatsArgs, parseDirtyRateStats } from '../../adapters/virsh/convergence-args.js';
import { measureLink } from '../../adapters/ssh/link-test.js';
import { QemuRss } from '../../adapters/host/qemu-rss.js';
import { nonZeroRamShare } from '../../adapters/host/ram-sample.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';

export interface Measurements {
  /** Bytes/s the guest dirties (QEMU page sampling); null when it could not be measured. */
  dirtyBps: number | null;
  /** Bytes/s the data path to the peer carried in the link test; null when it failed. */
  linkBps: number | null;
  /** What its first memory pass really sends: the non-zero part of its RAM (sampled), else QEMU's RSS. */
  touchedRamBytes: number | null;
  /** Why a figure is missing, one sentence each. */
  problems: string[];
  durationMs: number;
}

const DIRTY_SECONDS = 1;
const POLL_MS = 250;

/**
 * The pre-flight measurements, a few seconds and bounded: the dirty rate and the link test
 * run at the same time (the link test loads the host's CPU a little, not the guest's memory).
 */
export async function measureForMigration(ctx: NodeContext, vm: { name: string; uuid: string; memoryMiB?: number }, peer: PeerNode): Promise<Measurements> {
  const started = Date.now();
  const problems: string[] = [];
  const [dirty, link, rss] = await Promise.all([
    dirtyRate(ctx, vm.uuid).catch((e: unknown) => {
      problems.push(`The guest's dirty rate could not be measured: ${describeError(e)}`);
      return null;
    }),
    measureLink((file, args, opts) => peer.shell.exec(file, args, opts), peer.config.dataAddress).then(
      (r) => r.bps,
      (e: unknown) => {
        problems.push(`The link to ${peer.name} could not be measured: ${describeError(e)}`);
        return null;
      },
    ),
    new QemuRss().rssKiB(vm.name).catch(() => null),
  ]);
  return { dirtyBps: dirty, linkBps: link, touchedRamBytes: await ramToSend(vm, rss), problems, durationMs: Date.now() - started };
}

/**
 * What the memory copy really sends: the non-zero part of the guest's RAM, sampled from its
 * QEMU process (adapters/host/ram-sample.ts), never more than what QEMU holds resident; the
 * resident size alone when the sample cannot be taken.
 */
async function ramToSend(vm: { name: string; memoryMiB?: number }, rssKiB: number | null): Promise<number | null> {
  const rss = rssKiB === null ? null : rssKiB * 1024;
  if (!vm.memoryMiB) return rss;
  const ram = vm.memoryMiB * 1024 * 1024;
  const pid = await new QemuRss().pidOf(vm.name).catch(() => null);
  const share = pid === null ? null : nonZeroRamShare(pid, ram);
  if (share === null) return rss;
  const sampled = Math.round(share * ram);
  return rss === null ? sampled : Math.min(rss, sampled);
}

async function dirtyRate(ctx: NodeContext, uuid: string): Promise<number> {
  const uri = ctx.config.libvirtUri;
  await ctx.run('virsh', buildDirtyRateCalcArgs(uri, uuid, DIRTY_SECONDS), { timeoutMs: 10_000, failureMessage: 'libvirt could not start the dirty-rate measurement.' });
  const until = Date.now() + DIRTY_SECONDS * 1000 + 5_000;
  await ctx.sleep(DIRTY_SECONDS * 1000);
  while (Date.now() < until) {
    const r = await ctx.run('virsh', buildDirtyRateStatsArgs(uri, uuid), { timeoutMs: 10_000, failureMessage: 'libvirt could not read the dirty rate.' });
    const d = parseDirtyRateStats(r.stdout);
    if (d.status === 2 && d.megabytesPerSecond !== null) return d.megabytesPerSecond * 1024 * 1024;
    await ctx.sleep(POLL_MS);
  }
  throw new Error('QEMU did not finish measuring in time');
}

/**
 * Post-copy needs userfaultfd for QEMU, which libvirt runs unprivileged: QEMU 7.2 opens it
 * with the userfaultfd() syscall, allowed to non-root processes only with
 * vm.unprivileged_userfaultfd = 1. Returns null when it can work here, else why not.
 */
export async function localPostcopyProblem(node: string): Promise<string | null> {
  const v = await readFile('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').catch(() => null);
  return userfaultfdProblem(node, v);
}

export async function peerPostcopyProblem(peer: PeerNode): Promise<string | null> {
  const r = await peer.shell.exec('cat', ['/proc/sys/vm/unprivileged_userfaultfd'], { check: false, timeoutMs: 10_000 }).catch(() => null);
  return userfaultfdProblem(peer.name, r && r.exitCode === 0 ? r.stdout : null);
}

export function userfaultfdProblem(node: string, sysctl: string | null): string | null {
  if (sysctl === null) return `node ${node} does not say whether QEMU may use userfaultfd (no /proc/sys/vm/unprivileged_userfaultfd), which post-copy needs.`;
  return sysctl.trim() === '1' ? null : `node ${node} does not let QEMU use userfaultfd, which post-copy needs; set sysctl vm.unprivileged_userfaultfd=1 there.`;
}
