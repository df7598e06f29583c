import type { EvacuationPlan, PeerRoom, PlanEntry, PlanRequest, VmToPlace } from './types.js';
import { bytesToMove, predictMoveSeconds, scheduleEtaSec } from './predict.js';

const MIB = 1024 ** 2;

/**
 * Where each VM of a node goes so the node can be emptied: first-fit decreasing by RAM
 * (the big ones first, while there is room), each on the node left with the most free
 * RAM after it (spreads the load), and only where RAM and disk fit with a margin after
 * the VMs already placed by this plan. Pure: the facts come in, the plan goes out.
 */
export function planEvacuation(req: PlanRequest, perLink: number): EvacuationPlan {
  const room = new Map(req.peers.map((p) => [p.name, { mem: p.freeMemoryMiB, disk: p.freeDiskBytes }]));
  const peers = new Map(req.peers.map((p) => [p.name, p]));
  const decided = new Map<string, PlanEntry>();
  const toPlace: VmToPlace[] = [];

  for (const vm of req.vms) {
    const o = req.overrides[vm.name];
    if (o === 'exclude') decided.set(vm.name, stay(vm, 'Excluded from the evacuation by the admin; it stays.'));
    else if (!vm.running && req.shutOff === 'stay') decided.set(vm.name, stay(vm, 'Shut off; it stays (choose "move shut-off VMs offline" to move it).'));
    else toPlace.push(vm);
  }
  toPlace.sort((a, b) => b.memoryMiB - a.memoryMiB || b.diskAllocatedBytes - a.diskAllocatedBytes || a.name.localeCompare(b.name));

  for (const vm of toPlace) {
    const wanted = req.overrides[vm.name];
    const refusals = req.refused[vm.name] ?? {};
    const candidates = req.peers.filter((p) => (wanted ? p.name === wanted : true));
    const misses: string[] = [];
    let best: { peer: PeerRoom; memAfter: number; diskAfter: number } | null = null;
    if (wanted && !peers.has(wanted)) misses.push(`node ${wanted} is not a peer of this node`);
    for (const p of candidates) {
      const r = room.get(p.name)!;
      const memAfter = vm.running ? r.mem - vm.memoryMiB : r.mem;
      const diskAfter = r.disk - vm.diskAllocatedBytes;
      if (p.unavailable) misses.push(`${p.name}: ${p.unavailable}`);
      else if (refusals[p.name]) misses.push(`${p.name}: ${refusals[p.name]}`);
      else if (vm.running && memAfter < req.memoryMarginMiB) misses.push(`${p.name} has ${Math.max(0, Math.floor(r.mem))} MiB of RAM free, it needs ${vm.memoryMiB} MiB + ${req.memoryMarginMiB} MiB margin`);
      else if (diskAfter < req.diskMarginBytes) misses.push(`${p.name} has ${fmtBytes(Math.max(0, r.disk))} of disk free, it needs ${fmtBytes(vm.diskAllocatedBytes + req.diskMarginBytes)} with the margin`);
      else if (!best || memAfter > best.memAfter || (memAfter === best.memAfter && (diskAfter > best.diskAfter || (diskAfter === best.diskAfter && p.name < best.peer.name)))) best = { peer: p, memAfter, diskAfter };
    }
    if (!best) {
      decided.set(vm.name, cannot(vm, refusalOnly(refusals, candidates) ?? (misses.length ? `no node has room: ${misses.join('; ')}` : 'there is no other node to move it to')));
      continue;
    }
    room.set(best.peer.name, { mem: best.memAfter, disk: best.diskAfter });
    const live = vm.running;
    const mem = vm.memoryMiB * MIB;
    decided.set(vm.name, {
      vm: vm.name, uuid: vm.uuid, action: 'move', to: best.peer.name, mode: live ? 'live' : 'offline', memoryMiB: vm.memoryMiB,
      bytesToMove: bytesToMove(vm.diskAllocatedBytes, mem, live),
      predictedSec: predictMoveSeconds({ diskAllocatedBytes: vm.diskAllocatedBytes, memoryBytes: mem, live, linkBytesPerSec: best.peer.linkBytesPerSec }),
      reason: wanted ? `Moves to ${best.peer.name}, as chosen by the admin.` : `Moves to ${best.peer.name}, which keeps ${Math.floor(best.memAfter)} MiB of RAM free after it.`,
    });
  }
  const entries = req.vms.map((v) => decided.get(v.name)!);
  const moves = entries.filter((e) => e.action === 'move').map((e) => ({ link: e.to!, seconds: e.predictedSec }));
  return { entries, etaSec: scheduleEtaSec(moves, perLink) };
}

/** When every possible destination refused the VM in pre-flight, that is the reason (not "no room"). */
function refusalOnly(refusals: Record<string, string>, candidates: PeerRoom[]): string | null {
  const usable = candidates.filter((p) => !p.unavailable);
  if (!usable.length || !usable.every((p) => refusals[p.name])) return null;
  const reasons = [...new Set(usable.map((p) => refusals[p.name]!))];
  return reasons.length === 1 ? reasons[0]! : usable.map((p) => `${p.name}: ${refusals[p.name]}`).join('; ');
}

function stay(vm: VmToPlace, reason: string): PlanEntry {
  return { vm: vm.name, uuid: vm.uuid, action: 'stay', to: null, mode: null, memoryMiB: vm.memoryMiB, bytesToMove: 0, predictedSec: 0, reason };
}

function cannot(vm: VmToPlace, why: string): PlanEntry {
  return { vm: vm.name, uuid: vm.uuid, action: 'cannot', to: null, mode: null, memoryMiB: vm.memoryMiB, bytesToMove: 0, predictedSec: 0, reason: `Cannot move: ${why.replace(/\.$/, '')}.` };
}

export function fmtBytes(b: number): string {
  return b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GiB` : `${Math.ceil(b / MIB)} MiB`;
}
