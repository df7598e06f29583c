import { AppError } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import { type MaintenanceRecord, type VmHome } from '../../domain/maintenance/record.js';
import { movesFromPlan, remainingSec, summarize, summarySentence, type MoveState } from '../../domain/maintenance/run-state.js';
import { parseBool } from '../../domain/numbers.js';
import type { MaintenanceRepository } from '../../adapters/db/maintenance-repository.js';
import type { NodeContext } from '../node-context.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';
import { MaintenancePlanner } from './planner.js';
import { MaintenanceRunner, type RunnerDeps } from './runner.js';
import { parsePlanAsk } from './request.js';
import { localRoom, type NodeRoom } from './room.js';

/** How long the pre-flight answers of a shown plan are reused by Start. */
const PLAN_REUSE_MS = 10 * 60_000;

export interface MaintenanceStatus extends MaintenanceRecord {
  remainingSec: number;
  /** What this node offers VMs of other nodes' plans (null when libvirt cannot say). */
  room: NodeRoom | null;
  /** VMs an evacuation of this node moved away that have not come home. */
  away: VmHome[];
}

/**
 * Maintenance of this node: plan, evacuate, hold (refusing new work), bring home. The
 * marker, plan and moves are in SQLite; the moves themselves are ordinary migration jobs.
 */
export class MaintenanceService {
  private readonly runner: MaintenanceRunner;
  private lastPlan: { key: string; refused: Record<string, Record<string, string>>; at: number } | null = null;

  constructor(
    private readonly ctx: NodeContext,
    private readonly inventory: VmInventory,
    private readonly peers: PeerDirectory,
    private readonly repo: MaintenanceRepository,
    private readonly planner: MaintenancePlanner,
    deps: Omit<RunnerDeps, 'node' | 'perLink' | 'repo' | 'peers' | 'log' | 'sleep'>,
  ) {
    this.runner = new MaintenanceRunner({ ...deps, node: this.node, perLink: ctx.config.maintenance.maxParallelPerLink, repo, peers, log: ctx.log, sleep: ctx.sleep });
  }

  private get node(): string {
    return this.ctx.config.nodeName;
  }

  async status(): Promise<MaintenanceStatus> {
    const r = this.repo.get(this.node);
    const room = await localRoom(this.ctx).catch(() => null);
    return { ...r, remainingSec: Math.round(remainingSec(r.moves, this.ctx.config.maintenance.maxParallelPerLink)), room, away: this.repo.awayFrom(this.node) };
  }

  async plan(body: Record<string, unknown>, reuse = false) {
    const vms = await this.inventory.list();
    const ask = parsePlanAsk(body, vms.map((v) => v.name), this.peers.all().map((p) => p.name));
    const key = JSON.stringify(ask);
    const last = this.lastPlan;
    const fresh = reuse && last && last.key === key && Date.now() - last.at < PLAN_REUSE_MS;
    const plan = await this.planner.evacuation(ask, vms, fresh ? last.refused : undefined);
    if (!fresh) this.lastPlan = { key, refused: plan.refused, at: Date.now() };
    return plan;
  }

  /** Plans again from fresh facts (with the admin's adjustments), marks the node, and starts the moves. */
  async start(body: Record<string, unknown>, user: string | null): Promise<{ job: Job; maintenance: MaintenanceStatus }> {
    const cur = this.repo.get(this.node);
    if (cur.state !== 'normal') throw new AppError('VM_STATE_CONFLICT', `Node ${this.node} is already ${cur.state === 'returning' ? 'bringing its VMs home' : 'in maintenance'}.`);
    // The admin's plan of a moment ago: its pre-flight answers stand, the room is read again.
    const plan = await this.plan(body, true);
    // Marked before the first move: from now on nothing new lands here.
    this.repo.setState(this.node, 'evacuating', { plan, moves: movesFromPlan(plan.entries, this.node), jobId: null, summary: null });
    const stayed = plan.entries.filter((e) => e.action !== 'move').length;
    const job = this.runner.start('evacuation', user, (moves, aborted) => this.finished('evacuation', moves, aborted, stayed));
    this.repo.setJobId(this.node, job.id);
    return { job, maintenance: await this.status() };
  }

  /** Ends maintenance: the node takes work again, and (unless bringHome is false) every VM still away comes home. */
  async end(body: Record<string, unknown>, user: string | null): Promise<{ job: Job | null; maintenance: MaintenanceStatus }> {
    const bringHome = parseBool('bringHome', body.bringHome, true);
    const cur = this.repo.get(this.node);
    if (cur.state === 'evacuating') throw new AppError('VM_STATE_CONFLICT', `Node ${this.node} is still evacuating; abort the evacuation or wait for it to finish, then end maintenance.`);
    if (cur.state === 'returning') throw new AppError('VM_STATE_CONFLICT', `Node ${this.node} is already bringing its VMs home.`);
    if (cur.state === 'normal') throw new AppError('VM_STATE_CONFLICT', `Node ${this.node} is not in maintenance.`);
    const homes = this.repo.awayFrom(this.node);
    if (!bringHome || homes.length === 0) {
      for (const h of homes) this.repo.forgetHome(h.uuid);
      this.repo.setState(this.node, 'normal', { summary: `Maintenance ended; ${homes.length ? `${homes.length} VM(s) left where they are` : 'no VM was away'}.` });
      return { job: null, maintenance: await this.status() };
    }
    // Returning first: the VMs' hosts ask this node in pre-flight, and it must say yes now.
    this.repo.setState(this.node, 'returning', { summary: null });
    let planned;
    try {
      planned = await this.planner.homecoming(homes);
    } catch (e) {
      this.repo.setState(this.node, 'maintenance');
      throw e;
    }
    this.repo.setState(this.node, 'returning', { plan: planned.plan, moves: planned.moves, jobId: null });
    const job = this.runner.start('homecoming', user, (moves, aborted) => this.finished('homecoming', moves, aborted, 0));
    this.repo.setJobId(this.node, job.id);
    return { job, maintenance: await this.status() };
  }

  /** Aborts the running evacuation or homecoming: the running moves abort safely, the rest are not started. */
  async abort(): Promise<Job> {
    const cur = this.repo.get(this.node);
    if ((cur.state !== 'evacuating' && cur.state !== 'returning') || cur.jobId === null) throw new AppError('VM_STATE_CONFLICT', `Node ${this.node} runs no evacuation or homecoming to abort.`);
    return this.ctx.jobs.abort(cur.jobId);
  }

  /** After a restart: an evacuation or homecoming the old process left running goes on from its stored moves. */
  resume(): Job | null {
    const cur = this.repo.get(this.node);
    if (cur.state !== 'evacuating' && cur.state !== 'returning') return null;
    const kind = cur.state === 'evacuating' ? 'evacuation' : 'homecoming';
    const stayed = (cur.plan?.entries ?? []).filter((e) => e.action !== 'move').length;
    const job = this.runner.start(kind, null, (moves, aborted) => this.finished(kind, moves, aborted, stayed));
    this.repo.setJobId(this.node, job.id);
    return job;
  }

  private finished(kind: 'evacuation' | 'homecoming', moves: MoveState[], aborted: boolean, stayed: number): string {
    const sentence = summarySentence(kind, summarize(moves), stayed) + (aborted ? ' (aborted)' : '');
    if (kind === 'evacuation') {
      // Even a partial or aborted evacuation leaves the node in maintenance: End maintenance brings the moved VMs home.
      this.repo.setState(this.node, 'maintenance', { summary: sentence });
    } else {
      const left = this.repo.awayFrom(this.node);
      // A VM the plan could not bring home is said with its reason, not only counted.
      const unplanned = (this.repo.get(this.node).plan?.entries ?? []).filter((e) => e.action !== 'move');
      const why = unplanned.length ? ` Not brought home: ${unplanned.map((e) => `${e.vm} (${e.reason ?? 'no reason given'})`).join('; ')}` : '';
      this.repo.setState(this.node, left.length ? 'maintenance' : 'normal', { summary: left.length ? `${sentence}${why} ${left.length} VM(s) still away; End maintenance tries again.` : sentence });
      return sentence + why;
    }
    return sentence;
  }
}
