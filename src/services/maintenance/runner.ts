import { AppError, describeError } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import { isOver, nextMoves, remainingSec, summarize, summarySentence, type MoveState } from '../../domain/maintenance/run-state.js';
import type { MaintenanceRepository } from '../../adapters/db/maintenance-repository.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { JobContext, JobOutcome, JobRunner } from '../job-runner.js';
import type { Logger } from '../../log.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';
import type { VmMigrator } from '../migration/migrate-vm.js';

const POLL_MS = 1000;
/** A request to start a move on a peer that fails on the way is tried this many times in all. */
const BEGIN_TRIES = 3;
const BEGIN_RETRY_MS = 2000;


export type RunKind = 'evacuation' | 'homecoming';

export interface RunnerDeps {
  node: string;
  perLink: number;
  jobs: JobRunner;
  jobsRepo: JobsRepository;
  repo: MaintenanceRepository;
  migrator: VmMigrator;
  peers: PeerDirectory;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
}

/**
 * Runs the moves of a plan as one "maintenance" job: each move is the ordinary per-VM
 * migration job (its pre-flight, plan, verification and cleanup), started on the node
 * that holds the VM — here when evacuating, the VM's host when bringing it home — at
 * most `perLink` per link. The moves live in SQLite, so a restarted manager continues
 * from what it finds there.
 */
export class MaintenanceRunner {
  constructor(private readonly d: RunnerDeps) {}

  start(kind: RunKind, user: string | null, onDone: (moves: MoveState[], aborted: boolean) => string): Job {
    const n = this.d.repo.get(this.d.node).moves.length;
    const what = kind === 'evacuation' ? `Evacuating node ${this.d.node}` : `Bringing the VMs of node ${this.d.node} home`;
    return this.d.jobs.submit({ kind: 'maintenance', node: this.d.node, vm: null, user, params: { run: kind }, message: `${what}: ${n} move(s)…` }, (jc) => this.run(kind, user, jc, onDone));
  }

  private async run(kind: RunKind, user: string | null, jc: JobContext, onDone: (moves: MoveState[], aborted: boolean) => string): Promise<JobOutcome> {
    let aborted = false;
    const abortAsked = new Set<number>();
    jc.onAbort(async () => {
      aborted = true;
      await this.abortRunning(abortAsked);
    });
    // A move that was being started when a previous process died never got its job: start it again.
    this.d.repo.setMoves(this.d.node, this.moves().map((m) => (m.status === 'running' && m.jobId === null ? { ...m, status: 'pending' as const } : m)));
    let kick = () => {};
    for (;;) {
      if (aborted) {
        this.d.repo.setMoves(this.d.node, this.moves().map((m) => (m.status === 'pending' ? { ...m, status: 'not-started' as const, message: 'Not started: the run was aborted.' } : m)));
        await this.abortRunning(abortAsked);
      } else {
        // Started in the background (pre-flight takes seconds): a move ending on one link
        // never waits for the next one's pre-flight on another.
        for (const m of nextMoves(this.moves(), this.d.perLink)) {
          this.replace({ ...m, status: 'running', jobId: null, message: 'Starting (pre-flight)…' });
          void this.begin(kind, m, user).then((b) => {
            this.replace(b);
            kick();
          });
        }
      }
      const followed = await Promise.all(this.moves().filter((x) => x.status === 'running' && x.jobId !== null).map((m) => this.follow(kind, m)));
      for (const m of followed) this.replace(m);
      const moves = this.moves();
      const done = moves.filter(isOver).length;
      const total = moves.reduce((a, m) => a + m.predictedSec, 0) || 1;
      const percent = Math.round((100 * moves.reduce((a, m) => a + (isOver(m) ? m.predictedSec : (m.predictedSec * m.percent) / 100), 0)) / total);
      jc.progress({ step: kind, percent, moves, remainingSec: Math.round(remainingSec(moves, this.d.perLink)) }, `${kind === 'evacuation' ? 'Evacuating' : 'Bringing home'}: ${done} of ${moves.length} move(s) done…`);
      if (moves.every(isOver)) {
        const message = onDone(moves, aborted);
        const s = summarize(moves);
        return { message, result: { run: kind, aborted, ...s } };
      }
      await this.nextChange(moves, (k) => (kick = k));
    }
  }

  private moves(): MoveState[] {
    return this.d.repo.get(this.d.node).moves;
  }

  /** Until a running move's job changes here (a local job's update) or POLL_MS passes (a peer's job is polled). */
  private nextChange(moves: MoveState[], onKick: (kick: () => void) => void): Promise<void> {
    const mine = new Set(moves.filter((m) => m.status === 'running' && m.from === this.d.node && m.jobId !== null).map((m) => m.jobId));
    return new Promise((resolve) => {
      const onUpdate = (j: Job | null) => {
        if (j && mine.has(j.id) && j.state !== 'running') done();
      };
      const done = () => {
        this.d.jobs.off('update', onUpdate);
        resolve();
      };
      this.d.jobs.on('update', onUpdate);
      onKick(done);
      void this.d.sleep(POLL_MS).then(done);
    });
  }

  /** Over what SQLite holds now: a move started in the background may have changed since. */
  private replace(m: MoveState): MoveState[] {
    const next = this.moves().map((x) => (x.uuid === m.uuid && x.vm === m.vm ? m : x));
    this.d.repo.setMoves(this.d.node, next);
    return next;
  }

  /** Starts the move's migration job; a refusal (pre-flight said no, VM busy) fails this move only. */
  private async begin(kind: RunKind, m: MoveState, user: string | null): Promise<MoveState> {
    try {
      const body = { to: m.to, mode: m.mode };
      const job = kind === 'evacuation' ? await this.d.migrator.request(m.vm, body, user) : await this.beginOnPeer(m, body, user);
      return { ...m, status: 'running', jobId: job.id, message: job.message };
    } catch (e) {
      return { ...m, status: 'failed', message: e instanceof AppError ? e.message : describeError(e) };
    }
  }

  /**
   * Asks the VM's node to start its move home. A request that died on the way (the SSH
   * tunnel dropped while the peer ran its pre-flight, seen on a loaded lab) may still have
   * started the job there, so it is never simply sent again: the peer's newest jobs for the
   * VM are read, and a migration to here newer than the ones before the request is ours.
   */
  private async beginOnPeer(m: MoveState, body: Record<string, unknown>, user: string | null): Promise<Job> {
    const remote = this.remote(m.from);
    const newestBefore = async () => Math.max(0, ...(await remote.recentJobs(m.vm)).map((j) => j.id));
    // Without knowing its jobs before, a new one could not be told from an old one: then no retry.
    let before: number | null = await newestBefore().catch(() => null);
    for (let attempt = 1; ; attempt++) {
      try {
        return await remote.vmAction(m.vm, 'migrate', body, user);
      } catch (e) {
        if (!(e instanceof AppError) || e.code !== 'NODE_UNREACHABLE' || attempt >= BEGIN_TRIES || before === null) throw e;
        this.d.log.warn('starting a move on a peer failed on the way; checking whether it started', { vm: m.vm, node: m.from, error: describeError(e), detail: e.detail });
        await this.d.sleep(BEGIN_RETRY_MS * attempt);
        const jobs = await remote.recentJobs(m.vm).catch(() => null);
        if (jobs === null) continue;
        const ours = jobs.find((j) => j.id > before! && j.kind === 'migrate' && j.params.to === m.to);
        if (ours) return ours;
        before = Math.max(before, ...jobs.map((j) => j.id));
      }
    }
  }

  private async follow(kind: RunKind, m: MoveState): Promise<MoveState> {
    let job: Job | null;
    try {
      job = m.from === this.d.node ? this.d.jobsRepo.get(m.jobId!) : await this.remote(m.from).getJob(m.jobId!);
    } catch (e) {
      // The VM's node may be restarting: keep following, say why there is no news.
      return { ...m, message: `Waiting for node ${m.from} to answer (${describeError(e)})` };
    }
    if (!job) return { ...m, status: 'failed', message: `Migration job #${m.jobId} is gone from node ${m.from}.` };
    const percent = typeof job.progress?.percent === 'number' ? job.progress.percent : m.percent;
    if (job.state === 'running') return { ...m, percent, message: job.message };
    if (job.state === 'ok') {
      if (kind === 'evacuation') this.d.repo.setHome({ uuid: m.uuid, vm: m.vm, home: this.d.node, awayOn: m.to });
      else this.d.repo.forgetHome(m.uuid);
      return { ...m, status: 'moved', percent: 100, message: job.message };
    }
    return { ...m, status: 'failed', message: job.message ?? 'failed' };
  }

  /** Asks each running move's job to abort; one that cannot yet (still in pre-flight) is asked again next round. */
  private async abortRunning(asked: Set<number>): Promise<void> {
    for (const m of this.d.repo.get(this.d.node).moves) {
      if (m.status !== 'running' || m.jobId === null || asked.has(m.jobId)) continue;
      try {
        if (m.from === this.d.node) await this.d.jobs.abort(m.jobId);
        else await this.remote(m.from).abortJob(m.jobId, null);
        asked.add(m.jobId);
      } catch (e) {
        this.d.log.info('move not abortable yet', { vm: m.vm, jobId: m.jobId, error: describeError(e) });
      }
    }
  }

  private remote(node: string) {
    const p = this.d.peers.get(node);
    if (!p) throw new AppError('NODE_NOT_FOUND', `Node ${node} is not a configured peer of ${this.d.node}.`);
    return p.remote;
  }
}

export { summarySentence, summarize };
