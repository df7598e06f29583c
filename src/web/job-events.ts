import type { Request, Response } from 'express';
import { AppError } from '../errors.js';
import { requireInt } from '../domain/numbers.js';
import type { Job } from '../domain/job.js';
import type { AppDeps } from '../app.js';

const HEARTBEAT_MS = 15_000;

/**
 * Server-Sent Events for one job: the current state at once, then every update
 * until the job ends. `X-Accel-Buffering: no` tells nginx not to hold events back.
 */
export function streamJobEvents(req: Request, res: Response, deps: Pick<AppDeps, 'jobs' | 'jobsRepo'>): void {
  const id = requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id');
  const first = deps.jobsRepo.get(id);
  if (!first) throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist.`);
  res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  const send = (job: Job) => {
    res.write(`event: ${job.state === 'running' ? 'progress' : 'end'}\ndata: ${JSON.stringify(job)}\n\n`);
    if (job.state !== 'running') close();
  };
  const onUpdate = (job: Job | null) => {
    if (job && job.id === id) send(job);
  };
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    deps.jobs.off('update', onUpdate);
    res.end();
  };
  req.on('close', close);
  deps.jobs.on('update', onUpdate);
  send(first);
}
