import { describeError } from '../../errors.js';
import { isActive, type Vm } from '../../domain/vm.js';
import { planEvacuation } from '../../domain/maintenance/place.js';
import type { EvacuationPlan, PeerRoom, PlanRequest, VmToPlace } from '../../domain/maintenance/types.js';
import type { StoredPlan, VmHome } from '../../domain/maintenance/record.js';
import type { MoveState } from '../../domain/maintenance/run-state.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory, PeerNode } from '../migration/peer-nodes.js';
import type { VmMigrator } from '../migration/migrate-vm.js';
import { askPeerMaintenance } from './peer-state.js';
import { localRoom } from './room.js';
import type { PlanAsk } from './request.js';

const MIB = 1024 ** 2;

/** What pre-flight says of one VM to one node: null when it may go, else the first refusal. */
type Check = (vm: string, to: string, mode: 'live' | 'offline') => Promise<string | null>;

/**
 * Gathers the facts (VMs here, each peer's room and link), asks the pure planner, then
 * runs the migration pre-flight for each placed VM: a refusal there forbids that pair and
 * the plan is made again, so what the plan shows is what the migrations will accept.
 */
export class MaintenancePlanner {
  constructor(
    private readonly ctx: NodeContext,
    private readonly inventory: VmInventory,
    private readonly peers: PeerDirectory,
    private readonly migrator: VmMigrator,
    private readonly jobsRepo: JobsRepository,
  ) {}

  /**
   * `known` (the refusals of a plan the admin just saw) skips asking pre-flight again:
   * each move's own job runs its pre-flight anyway, and a refusal there fails that move.
   */
  async evacuation(ask: PlanAsk, vms: Vm[], known?: Record<string, Record<string, string>>): Promise<StoredPlan> {
    const rooms = await Promise.all(this.peers.all().map((p) => this.peerRoom(p)));
    const req: PlanRequest = {
      vms: vms.map(toPlace), peers: rooms, shutOff: ask.shutOff, overrides: ask.overrides, refused: structuredClone(known ?? {}),
      memoryMarginMiB: this.ctx.config.maintenance.memoryMarginMiB, diskMarginBytes: this.ctx.config.maintenance.diskMarginMiB * MIB,
    };
    const check: Check = async (vm, to, mode) => {
      const r = await this.migrator.check(vm, { to, mode });
      return r.go ? null : r.checks.find((c) => !c.ok)?.message ?? 'refused by pre-flight';
    };
    const plan = known ? planEvacuation(req, this.perLink) : await checkedPlan(req, check, this.perLink);
    return { ...plan, shutOff: ask.shutOff, overrides: ask.overrides, refused: req.refused, madeAt: new Date().toISOString() };
  }

  /** Every VM this node's evacuation moved and that is still away, planned back here. */
  async homecoming(homes: VmHome[]): Promise<{ plan: StoredPlan; moves: MoveState[] }> {
    const me = this.ctx.config.nodeName;
    const found: { vm: Vm; on: string }[] = [];
    const lost: { vm: string; uuid: string; why: string }[] = [];
    const byPeer = new Map<string, VmHome[]>();
    for (const h of homes) byPeer.set(h.awayOn, [...(byPeer.get(h.awayOn) ?? []), h]);
    for (const [node, hs] of byPeer) {
      const peer = this.peers.get(node);
      const listed = peer ? await listWithRetries(peer) : null;
      for (const h of hs) {
        const vm = listed?.find((v) => v.uuid === h.uuid);
        if (vm) found.push({ vm, on: node });
        else lost.push({ vm: h.vm, uuid: h.uuid, why: listed ? `it is no longer on ${node}` : `node ${node} cannot be asked` });
      }
    }
    const room = await localRoom(this.ctx);
    const req: PlanRequest = {
      vms: found.map((f) => toPlace(f.vm)),
      peers: [{ name: me, unavailable: null, freeMemoryMiB: room.freeMemoryMiB, freeDiskBytes: room.freeDiskBytes, linkBytesPerSec: this.ctx.config.maintenance.assumedLinkMBps * 1e6 }],
      // Home is where they go, shut off or not.
      shutOff: 'offline', overrides: Object.fromEntries(found.map((f) => [f.vm.name, me])), refused: {},
      memoryMarginMiB: this.ctx.config.maintenance.memoryMarginMiB, diskMarginBytes: this.ctx.config.maintenance.diskMarginMiB * MIB,
    };
    const where = new Map(found.map((f) => [f.vm.name, f.on]));
    const check: Check = async (vm, to, mode) => {
      const r = (await this.peers.get(where.get(vm)!)!.remote.migrateCheck(vm, { to, mode })) as { go?: boolean; checks?: { ok: boolean; message: string }[] };
      return r.go ? null : r.checks?.find((c) => !c.ok)?.message ?? 'refused by pre-flight';
    };
    const plan = await checkedPlan(req, check, this.perLink);
    const moves: MoveState[] = plan.entries.filter((e) => e.action === 'move').map((e) => ({
      vm: e.vm, uuid: e.uuid, from: where.get(e.vm)!, to: me, mode: e.mode ?? 'live', status: 'pending', jobId: null, percent: 0, predictedSec: e.predictedSec, message: null,
    }));
    const stored: StoredPlan = { ...plan, shutOff: 'offline', overrides: {}, refused: req.refused, madeAt: new Date().toISOString() };
    for (const l of lost) stored.entries.push({ vm: l.vm, uuid: l.uuid, action: 'cannot', to: null, mode: null, memoryMiB: 0, bytesToMove: 0, predictedSec: 0, reason: `Cannot bring it home: ${l.why}.` });
    return { plan: stored, moves };
  }

  private get perLink(): number {
    return this.ctx.config.maintenance.maxParallelPerLink;
  }

  private async peerRoom(peer: PeerNode): Promise<PeerRoom> {
    const link = this.measuredLink(peer.name) ?? this.ctx.config.maintenance.assumedLinkMBps * 1e6;
    try {
      const m = await askPeerMaintenance(peer);
      const refuses = m.state === 'evacuating' || m.state === 'maintenance';
      return {
        name: peer.name, unavailable: refuses ? 'it is in maintenance itself' : m.room ? null : 'its manager did not say how much room it has',
        freeMemoryMiB: m.room?.freeMemoryMiB ?? 0, freeDiskBytes: m.room?.freeDiskBytes ?? 0, linkBytesPerSec: link,
      };
    } catch (e) {
      return { name: peer.name, unavailable: `its kvm-ferry cannot be reached (${describeError(e).replace(/\.$/, '')})`, freeMemoryMiB: 0, freeDiskBytes: 0, linkBytesPerSec: link };
    }
  }

  /** Bytes per second of the last verified migration from here to that peer, if any. */
  private measuredLink(peer: string): number | null {
    const me = this.ctx.config.nodeName;
    for (const j of this.jobsRepo.recent(200, { node: me })) {
      const r = j.result as { to?: unknown; bytesMoved?: unknown; durationMs?: unknown } | null;
      if (j.kind !== 'migrate' || j.state !== 'ok' || r?.to !== peer) continue;
      if (typeof r.bytesMoved === 'number' && typeof r.durationMs === 'number' && r.bytesMoved > 0 && r.durationMs > 0) return r.bytesMoved / (r.durationMs / 1000);
    }
    return null;
  }
}

function toPlace(vm: Vm): VmToPlace {
  const disk = vm.disks.filter((d) => d.device === 'disk').reduce((a, d) => a + (d.allocatedBytes ?? 0), 0);
  return { name: vm.name, uuid: vm.uuid, running: isActive(vm.state), memoryMiB: vm.memoryMiB, diskAllocatedBytes: disk };
}

/** Plan, pre-flight every placed VM, forbid refused pairs, plan again — until pre-flight accepts every move. */
async function checkedPlan(req: PlanRequest, check: Check, perLink: number): Promise<EvacuationPlan> {
  const asked = new Set<string>();
  for (let round = 0; round <= req.peers.length; round++) {
    const plan = planEvacuation(req, perLink);
    const fresh = plan.entries.filter((e) => e.action === 'move' && !asked.has(`${e.vm}\n${e.to}`));
    for (const e of fresh) asked.add(`${e.vm}\n${e.to}`);
    // Independent questions, asked at once (each pre-flight is mostly waiting on SSH).
    const refusals = await Promise.all(fresh.map((e) => check(e.vm, e.to!, e.mode ?? 'live').catch((err: unknown) => describeError(err))));
    fresh.forEach((e, i) => {
      if (refusals[i]) (req.refused[e.vm] ??= {})[e.to!] = refusals[i]!;
    });
    if (!refusals.some(Boolean)) return plan;
  }
  return planEvacuation(req, perLink);
}

/** A peer's VM list; a blip (a dropped tunnel) is tried again before a VM is given up as lost. */
async function listWithRetries(peer: PeerNode, tries = 3): Promise<Vm[] | null> {
  for (let i = 1; ; i++) {
    try {
      return await peer.remote.listVms();
    } catch {
      if (i >= tries) return null;
      await new Promise((r) => setTimeout(r, 1500 * i));
    }
  }
}
