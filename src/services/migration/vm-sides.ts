import { AppError } from '../../errors.js';
import { parseDomstateReason, UNKNOWN, type SideState } from '../../domain/migration-outcome.js';
import type { CommandResult } from '../../adapters/process/run-command.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';

export type VirshOn = (args: string[]) => Promise<CommandResult>;

/**
 * The VM's state on one node, by UUID. "Not defined" is decided by listing UUIDs, never
 * from an error text; a node that cannot be asked is an error for the caller to handle.
 */
export async function sideState(virsh: VirshOn, uuid: string): Promise<SideState | null> {
  const isListed = async (): Promise<boolean> => {
    const listed = await virsh(['list', '--all', '--uuid']);
    if (listed.exitCode !== 0) throw new AppError('LIBVIRT_FAILED', `libvirt could not list its VMs: ${listed.stderr.trim()}`);
    return listed.stdout.split('\n').some((l) => l.trim() === uuid);
  };
  if (!(await isListed())) return null;
  const r = await virsh(['domstate', '--reason', '--domain', uuid]);
  if (r.exitCode === 0) return parseDomstateReason(r.stdout);
  // A migration that finishes between the two calls undefines the VM here: asked again,
  // "no longer listed" is the answer, not an error.
  if (!(await isListed())) return null;
  throw new AppError('LIBVIRT_FAILED', `libvirt could not tell the state of VM ${uuid}: ${r.stderr.trim()}`);
}

export function localSide(ctx: NodeContext, uuid: string): Promise<SideState | null> {
  return sideState((args) => ctx.run('virsh', ['-c', ctx.config.libvirtUri, ...args], { check: false, timeoutMs: 20_000 }), uuid);
}

export function peerSide(peer: PeerNode, uuid: string): Promise<SideState | null> {
  return sideState((args) => peer.virsh(args, { check: false, timeoutMs: 20_000 }), uuid);
}

/** The peer's view, or UNKNOWN when it cannot be reached (after a few tries: a blip is not an answer). */
export async function peerSideOrUnknown(peer: PeerNode, uuid: string, sleep: (ms: number) => Promise<void>, tries = 3): Promise<SideState | null | typeof UNKNOWN> {
  for (let i = 0; i < tries; i++) {
    try {
      return await peerSide(peer, uuid);
    } catch {
      if (i < tries - 1) await sleep(1000 * 2 ** i);
    }
  }
  return UNKNOWN;
}
