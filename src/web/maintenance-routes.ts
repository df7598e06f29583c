import type { Request, Response, Router } from 'express';
import type { AppDeps } from '../app.js';
import type { Job } from '../domain/job.js';
import { bodyOf, requestUser } from './request-context.js';

const HEARTBEAT_MS = 15_000;
const MIN_GAP_MS = 500;

/**
 * /api/nodes/:node/maintenance…: plan (nothing changes), start, end, abort, status, and
 * the status as Server-Sent Events while an evacuation or homecoming runs.
 */
export function maintenanceApi(r: Router, deps: AppDeps, local: (req: Request) => unknown, sendJob: (req: Request, res: Response, job: Job) => Promise<void>): void {
  const m = deps.maintenance;
  r.get('/nodes/:node/maintenance', async (req, res) => {
    local(req);
    res.json(await m.status());
  });
  r.post('/nodes/:node/maintenance/plan', async (req, res) => {
    local(req);
    res.json({ plan: await m.plan(bodyOf(req)) });
  });
  r.post('/nodes/:node/maintenance/start', async (req, res) => {
    local(req);
    const { job } = await m.start(bodyOf(req), requestUser(req));
    await sendJob(req, res, job);
  });
  r.post('/nodes/:node/maintenance/end', async (req, res) => {
    local(req);
    const { job, maintenance } = await m.end(bodyOf(req), requestUser(req));
    if (job) await sendJob(req, res, job);
    else res.json({ job: null, maintenance });
  });
  r.post('/nodes/:node/maintenance/abort', async (req, res) => {
    local(req);
    res.json({ job: await m.abort() });
  });
  r.get('/nodes/:node/maintenance/events', (req, res) => {
    local(req);
    streamStatus(req, res, deps);
  });
}

/** The whole status on every job update (throttled), so one stream shows every move's bar. */
function streamStatus(req: Request, res: Response, deps: AppDeps): void {
  res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  let closed = false;
  let last = 0;
  let timer: NodeJS.Timeout | null = null;
  const send = async () => {
    timer = null;
    last = Date.now();
    const s = await deps.maintenance.status().catch(() => null);
    if (!closed && s) res.write(`event: status\ndata: ${JSON.stringify(s)}\n\n`);
  };
  const onUpdate = () => {
    if (closed || timer) return;
    timer = setTimeout(() => void send(), Math.max(0, MIN_GAP_MS - (Date.now() - last)));
  };
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  req.on('close', () => {
    closed = true;
    clearInterval(heartbeat);
    if (timer) clearTimeout(timer);
    deps.jobs.off('update', onUpdate);
  });
  deps.jobs.on('update', onUpdate);
  void send();
}
