import type { Db } from './database.js';
import type { Job, JobKind, JobState } from '../../domain/job.js';

interface JobRow {
  id: number;
  kind: string;
  node: string;
  vm: string | null;
  user: string | null;
  state: string;
  started_at_ms: number;
  ended_at_ms: number | null;
  message: string | null;
  detail: string | null;
  params: string;
  progress: string | null;
  result: string | null;
}

function toJob(r: JobRow): Job {
  return {
    id: r.id,
    kind: r.kind as JobKind,
    node: r.node,
    vm: r.vm,
    user: r.user,
    state: r.state as JobState,
    startedAt: new Date(r.started_at_ms).toISOString(),
    endedAt: r.ended_at_ms === null ? null : new Date(r.ended_at_ms).toISOString(),
    durationMs: r.ended_at_ms === null ? null : r.ended_at_ms - r.started_at_ms,
    message: r.message,
    detail: r.detail,
    params: JSON.parse(r.params) as Record<string, unknown>,
    progress: r.progress === null ? null : (JSON.parse(r.progress) as Record<string, unknown>),
    result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
  };
}

export class VmBusyError extends Error {
  constructor(readonly runningJob: Job) {
    super(`job ${runningJob.id} is running on ${runningJob.vm}`);
  }
}

export class JobsRepository {
  constructor(private readonly db: Db, private readonly now: () => number = Date.now) {}

  /** Inserts a running job; throws VmBusyError if the VM already has one (unique partial index). */
  start(input: { kind: JobKind; node: string; vm: string | null; user: string | null; params: Record<string, unknown>; message: string }): Job {
    try {
      const info = this.db
        .prepare('INSERT INTO jobs (kind, node, vm, user, state, started_at_ms, message, params) VALUES (?, ?, ?, ?, \'running\', ?, ?, ?)')
        .run(input.kind, input.node, input.vm, input.user, this.now(), input.message, JSON.stringify(input.params));
      return this.get(Number(info.lastInsertRowid))!;
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && input.vm !== null) {
        const running = this.runningFor(input.node, input.vm);
        if (running) throw new VmBusyError(running);
      }
      throw e;
    }
  }

  /** Ends a running job; `result` is merged over what the job recorded while it ran. */
  finish(id: number, state: 'ok' | 'failed', message: string, detail: string | null = null, result: Record<string, unknown> | null = null): Job {
    const merged = result === null ? null : JSON.stringify({ ...(this.get(id)?.result ?? {}), ...result });
    this.db
      .prepare('UPDATE jobs SET state = ?, ended_at_ms = ?, message = ?, detail = ?, result = COALESCE(?, result) WHERE id = ? AND state = \'running\'')
      .run(state, this.now(), message, detail, merged, id);
    return this.get(id)!;
  }

  setProgress(id: number, progress: Record<string, unknown>, message?: string): void {
    if (message === undefined) this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(JSON.stringify(progress), id);
    else this.db.prepare('UPDATE jobs SET progress = ?, message = ? WHERE id = ?').run(JSON.stringify(progress), message, id);
  }

  /** Replaces what the job was asked (e.g. once pre-flight has turned a request into a plan). */
  setParams(id: number, params: Record<string, unknown>): void {
    this.db.prepare('UPDATE jobs SET params = ? WHERE id = ?').run(JSON.stringify(params), id);
  }

  mergeResult(id: number, result: Record<string, unknown>): void {
    const cur = this.get(id)?.result ?? {};
    this.db.prepare('UPDATE jobs SET result = ? WHERE id = ?').run(JSON.stringify({ ...cur, ...result }), id);
  }

  get(id: number): Job | null {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r ? toJob(r) : null;
  }

  runningFor(node: string, vm: string): Job | null {
    const r = this.db.prepare('SELECT * FROM jobs WHERE node = ? AND vm = ? AND state = \'running\'').get(node, vm) as JobRow | undefined;
    return r ? toJob(r) : null;
  }

  running(): Job[] {
    return (this.db.prepare('SELECT * FROM jobs WHERE state = \'running\' ORDER BY id').all() as JobRow[]).map(toJob);
  }

  recent(limit = 50, filter: { node?: string; vm?: string } = {}): Job[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.node) {
      where.push('node = ?');
      args.push(filter.node);
    }
    if (filter.vm) {
      where.push('vm = ?');
      args.push(filter.vm);
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, limit) as JobRow[]).map(toJob);
  }

  /** Failed migrations whose destination leftovers could not be removed yet (peer was unreachable). */
  withPendingCleanup(): Job[] {
    return (this.db.prepare("SELECT * FROM jobs WHERE kind = 'migrate' AND state = 'failed' AND json_extract(result, '$.cleanupPending') = 1 ORDER BY id").all() as JobRow[]).map(toJob);
  }

  /** Failed moves whose VM, paused for its copy, could not be resumed yet (libvirt still held it). */
  withPendingResume(): Job[] {
    return (this.db.prepare("SELECT * FROM jobs WHERE kind = 'migrate' AND state = 'failed' AND json_extract(result, '$.resumePending') = 1 ORDER BY id").all() as JobRow[]).map(toJob);
  }

  /** Ends a job that never ran: a refusal is recorded like any outcome. */
  refused(input: Parameters<JobsRepository['start']>[0], message: string, detail: string | null): Job {
    const job = this.start(input);
    return this.finish(job.id, 'failed', message, detail);
  }
}
