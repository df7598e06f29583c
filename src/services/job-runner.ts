import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Job, JobKind } from '../domain/job.js';
import { JobsRepository, VmBusyError } from '../adapters/db/jobs-repository.js';
import type { Logger } from '../log.js';
import { closeTrail, emptyTrail, readTrail, trailAfter, type JobTrail } from '../domain/job-trail.js';

export interface JobContext {
  job: Job;
  progress(progress: Record<string, unknown>, message?: string): void;
  /** Registers how to cancel this job; POST /api/jobs/:id/abort calls it. */
  onAbort(abort: () => Promise<void>): void;
  /** True once the user asked to abort. */
  readonly aborted: boolean;
  /** Facts that must survive a failure (e.g. "disk created"), so cleanup and audit see them. */
  record(result: Record<string, unknown>): void;
}

export interface JobOutcome {
  message: string;
  result?: Record<string, unknown>;
}

/** How a job left running by a previous process really ended, decided from libvirt's state. */
export interface OrphanVerdict {
  state: 'ok' | 'failed';
  message: string;
  result?: Record<string, unknown>;
}

export interface JobRequest {
  kind: JobKind;
  node: string;
  vm: string | null;
  user: string | null;
  params: Record<string, unknown>;
  message: string;
}

/**
 * Runs long work outside the HTTP request and records what really happened.
 * Emits 'update' with the job after every change, for event streams.
 */
export class JobRunner extends EventEmitter {
  private readonly inFlight = new Map<number, Promise<Job>>();
  private readonly aborters = new Map<number, () => Promise<void>>();

  constructor(private readonly repo: JobsRepository, private readonly log: Logger) {
    super();
    this.setMaxListeners(0);
  }

  /** Starts the job row (409 if the VM is busy) and runs `work` in the background. */
  submit(req: JobRequest, work: (ctx: JobContext) => Promise<JobOutcome>): Job {
    let job: Job;
    try {
      job = this.repo.start(req);
    } catch (e) {
      if (e instanceof VmBusyError) {
        throw new AppError('VM_BUSY', `VM ${req.vm} is busy with job #${e.runningJob.id} (${e.runningJob.kind}); wait for it to finish.`);
      }
      throw e;
    }
    this.emit('update', job);
    this.run(job, work);
    return job;
  }

  /**
   * Runs `work` for a job row the caller already started (and so holds the VM's lock),
   * e.g. a migration whose pre-flight ran under that lock.
   */
  runReserved(job: Job, work: (ctx: JobContext) => Promise<JobOutcome>): Job {
    if (job.state !== 'running' || this.inFlight.has(job.id)) throw new Error(`job ${job.id} is not a reserved running job`);
    this.emit('update', job);
    this.run(job, work);
    return job;
  }

  /** Takes over a job row left running by a previous process (e.g. to follow a migration libvirt still runs). */
  adopt(job: Job, work: (ctx: JobContext) => Promise<JobOutcome>): void {
    if (job.state !== 'running' || this.inFlight.has(job.id)) return;
    this.run(job, work);
  }

  private run(job: Job, work: (ctx: JobContext) => Promise<JobOutcome>): void {
    const aborted = { value: false };
    const startMs = Date.parse(job.startedAt);
    // Steps reported before the runner took over (a migration's pre-flight) began with the job.
    let trail: JobTrail = readTrail(job.progress?.trail) ?? (typeof job.progress?.step === 'string' ? trailAfter(emptyTrail(), { step: job.progress.step }, startMs, startMs) : emptyTrail());
    const ctx: JobContext = {
      job,
      onAbort: (fn) => {
        this.aborters.set(job.id, async () => {
          aborted.value = true;
          await fn();
        });
      },
      get aborted() {
        return aborted.value;
      },
      progress: (p, m) => {
        trail = trailAfter(trail, p, Date.now(), startMs);
        this.repo.setProgress(job.id, { ...p, trail }, m);
        this.emit('update', this.repo.get(job.id));
      },
      record: (r) => this.repo.mergeResult(job.id, r),
    };
    // The final trail goes in the result, whatever the outcome (a failed move's timeline says where it stopped).
    const done = this.execute(job, ctx, work, () => closeTrail(trail, Date.now()));
    this.inFlight.set(job.id, done);
    void done.finally(() => {
      this.inFlight.delete(job.id);
      this.aborters.delete(job.id);
    });
  }

  private async execute(job: Job, ctx: JobContext, work: (ctx: JobContext) => Promise<JobOutcome>, finalTrail: () => JobTrail): Promise<Job> {
    let finished: Job;
    const keepTrail = () => {
      const t = finalTrail();
      if (t.steps.length || t.samples.length) this.repo.mergeResult(job.id, { trail: t });
    };
    try {
      const outcome = await work(ctx);
      keepTrail();
      finished = this.repo.finish(job.id, 'ok', outcome.message, null, outcome.result ?? null);
    } catch (e) {
      keepTrail();
      if (isAppError(e)) {
        finished = this.repo.finish(job.id, 'failed', e.message, e.detail ?? null);
      } else {
        const ref = randomUUID().slice(0, 8);
        this.log.error('job crashed', { jobId: job.id, ref, error: describeError(e), stack: (e as Error)?.stack });
        finished = this.repo.finish(job.id, 'failed', `Unexpected error in kvm-ferry (reference ${ref}); see the manager's log.`, describeError(e));
      }
    }
    this.log.info('job finished', { jobId: job.id, kind: job.kind, vm: job.vm, state: finished.state, message: finished.message });
    this.emit('update', finished);
    return finished;
  }

  /** Asks a running job to stop; 409 when it cannot be aborted (finished, or not abortable). */
  async abort(id: number): Promise<Job> {
    const job = this.repo.get(id);
    if (!job) throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist.`);
    const abort = this.aborters.get(id);
    if (job.state !== 'running' || !abort) {
      throw new AppError('VM_STATE_CONFLICT', job.state === 'running' ? `Job #${id} (${job.kind}) cannot be aborted.` : `Job #${id} has already finished (${job.state}).`);
    }
    await abort();
    return this.repo.get(id)!;
  }

  running(): Job[] {
    return this.repo.running();
  }

  /** Resolves with the job once it is no longer running, or as it is after `timeoutMs`. */
  async waitFor(id: number, timeoutMs: number): Promise<Job | null> {
    const p = this.inFlight.get(id);
    if (p) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    return this.repo.get(id);
  }

  /** Jobs left "running" by a previous process cannot still be running in this one. */
  failOrphans(): Job[] {
    const orphans = this.repo.running().filter((j) => !this.inFlight.has(j.id));
    return orphans.map((j) =>
      this.repo.finish(j.id, 'failed', `Interrupted: kvm-ferry restarted while this ${j.kind} was running; check the VM's state and retry.`),
    );
  }

  /** Like failOrphans, but each job's outcome is decided by `decide` (e.g. from libvirt's state). */
  async reconcileOrphans(decide: (job: Job) => Promise<OrphanVerdict>): Promise<Job[]> {
    const orphans = this.repo.running().filter((j) => !this.inFlight.has(j.id));
    const settled: Job[] = [];
    for (const j of orphans) {
      const v = await decide(j);
      const done = this.repo.finish(j.id, v.state, v.message, null, v.result ?? null);
      this.emit('update', done);
      settled.push(done);
    }
    return settled;
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }
}
