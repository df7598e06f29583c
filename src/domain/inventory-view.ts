import type { Vm, VmState } from './vm.js';

/**
 * What this manager last learned about one node. `vms` is the last list it answered with:
 * an inactive node keeps it (shown as "last known") so a blip never blanks the page.
 */
export interface NodeView {
  name: string;
  local: boolean;
  url?: string;
  /** never: not reached yet since start-up; active: the last refresh answered; inactive: it failed. */
  state: 'never' | 'active' | 'inactive';
  vms: Vm[];
  /** When the node last answered (ms since the epoch), null if it never did. */
  at: number | null;
  /** Why the last refresh failed, one sentence; null while active. */
  reason: string | null;
}

export interface VmBrief {
  name: string;
  uuid: string;
  state: VmState;
}

/** One change an open page applies to its VM list without a reload. */
export type InventoryChange =
  | { kind: 'vm-added'; node: string; vm: VmBrief }
  | { kind: 'vm-removed'; node: string; vm: VmBrief }
  | { kind: 'vm-state'; node: string; vm: VmBrief; was: VmState }
  | { kind: 'node'; node: string; state: NodeView['state']; reason: string | null; at: number | null };

const brief = (v: Vm): VmBrief => ({ name: v.name, uuid: v.uuid, state: v.state });

/**
 * The changes between two views of the same node, VMs keyed by UUID. A node that is
 * inactive before or after says so once; its last known VMs are not reported as removed.
 * A node's age moving on (`at`) is not a change: pages count it themselves.
 */
export function diffNodeView(prev: NodeView, next: NodeView): InventoryChange[] {
  const out: InventoryChange[] = [];
  if (prev.state !== next.state || prev.reason !== next.reason) {
    out.push({ kind: 'node', node: next.name, state: next.state, reason: next.reason, at: next.at });
  }
  if (next.state !== 'active') return out;
  const before = new Map(prev.vms.map((v) => [v.uuid, v]));
  const after = new Map(next.vms.map((v) => [v.uuid, v]));
  for (const [uuid, v] of after) {
    const old = before.get(uuid);
    if (!old) out.push({ kind: 'vm-added', node: next.name, vm: brief(v) });
    else if (old.state !== v.state) out.push({ kind: 'vm-state', node: next.name, vm: brief(v), was: old.state });
  }
  for (const [uuid, v] of before) if (!after.has(uuid)) out.push({ kind: 'vm-removed', node: next.name, vm: brief(v) });
  return out;
}

/**
 * Several batches for the same page merged into one: the last word on each VM and each
 * node wins, and a VM added then removed within the window is not mentioned at all.
 */
export function coalesceChanges(changes: readonly InventoryChange[]): InventoryChange[] {
  const byKey = new Map<string, InventoryChange>();
  for (const c of changes) {
    const key = c.kind === 'node' ? `node:${c.node}` : `vm:${c.node}:${c.vm.uuid}`;
    const prev = byKey.get(key);
    if (prev && prev.kind === 'vm-added' && c.kind === 'vm-removed') {
      byKey.delete(key);
      continue;
    }
    if (prev && prev.kind === 'vm-added' && c.kind === 'vm-state') {
      byKey.set(key, { kind: 'vm-added', node: c.node, vm: c.vm });
      continue;
    }
    // Delete first so the merged change keeps arrival order.
    byKey.delete(key);
    byKey.set(key, c);
  }
  return [...byKey.values()];
}

/** "as of 3 s ago", "as of 2 min ago": how old a node's view is, for the page. */
export function ageSentence(at: number | null, now: number): string {
  if (at === null) return 'never reached since this manager started';
  const sec = Math.max(0, Math.round((now - at) / 1000));
  if (sec < 120) return `as of ${sec} s ago`;
  const min = Math.round(sec / 60);
  if (min < 120) return `as of ${min} min ago`;
  return `as of ${Math.round(min / 60)} h ago`;
}

/**
 * Why a refresh failed, as the page says it: libvirt that does not answer is told apart
 * from a manager (or the SSH path to it) that does not.
 */
export function inactiveReason(local: boolean, code: string | undefined, message: string): string {
  if (code === 'LIBVIRT_UNREACHABLE' || /^libvirt does not answer/.test(message)) {
    return /^libvirt does not answer/.test(message) ? message : `libvirt does not answer: ${message}`;
  }
  if (local) return message;
  return `manager unreachable: ${message}`;
}
