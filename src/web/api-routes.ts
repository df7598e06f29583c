import { Router, type Request } from 'express';
import { AppError } from '../errors.js';
import type { AppDeps } from '../app.js';
import { requireInt } from '../domain/numbers.js';
import { bodyOf, queryOf, requestUser } from './request-context.js';
import type { Job } from '../domain/job.js';
import { streamJobEvents } from './job-events.js';
import { forwardToPeer } from './peer-proxy.js';
import { maintenanceApi } from './maintenance-routes.js';

const MAX_WAIT_SEC = 600;

/** JSON API for scripts: the same use cases as the page, same validation, same jobs. */
export function apiRoutes(deps: AppDeps): Router {
  const r = Router();
  const { node, jobsRepo, jobs } = deps;

  const local = (req: Request) => {
    if (req.params.node !== node.name) {
      throw new AppError('NODE_NOT_FOUND', `Node ${String(req.params.node)} is not known to this manager.`);
    }
    return node;
  };

  /** `?wait=N` lets a script block up to N s for the job to finish instead of polling. */
  const accepted = async (req: Request, job: Job) => {
    const wait = queryOf(req).wait;
    if (wait === undefined) return job;
    const sec = requireInt('wait', wait, 0, MAX_WAIT_SEC, 'wait');
    return (await jobs.waitFor(job.id, sec * 1000)) ?? job;
  };

  const sendJob = async (req: Request, res: import('express').Response, job: Job) => {
    const j = await accepted(req, job);
    res.status(j.state === 'running' ? 202 : 200).location(`/api/nodes/${encodeURIComponent(j.node)}/jobs/${j.id}`).json({ job: j });
  };

  // Checked before any action runs: a bad ?wait must not leave a started job behind a 400.
  r.use((req, _res, next) => {
    const wait = queryOf(req).wait;
    if (wait !== undefined) requireInt('wait', wait, 0, MAX_WAIT_SEC, 'wait');
    next();
  });

  r.get('/nodes', async (_req, res) => {
    res.json(await Promise.all([node.status(), ...deps.peers.all().map((p) => p.status())]));
  });

  /** The inventory cache as the page sees it: every node, its age, why it is inactive, its VMs. */
  r.get('/inventory', (_req, res) => {
    const now = Date.now();
    res.json(deps.inventory.cache.views().map((v) => ({ ...v, ageSec: v.at === null ? null : Math.max(0, Math.round((now - v.at) / 1000)) })));
  });

  // `?cached=1`: any node's last known list from the cache, without asking the node (503 until it answered once).
  r.get('/nodes/:node/vms', (req, res, next) => {
    if (queryOf(req).cached !== '1') return next();
    const view = deps.inventory.cache.view(String(req.params.node));
    if (!view) throw new AppError('NODE_NOT_FOUND', `Node ${String(req.params.node)} is not known to this manager.`);
    if (view.at === null) throw new AppError('NODE_UNREACHABLE', view.reason ?? `Node ${view.name} has not been reached yet.`);
    res.set('X-Kvm-Ferry-As-Of', new Date(view.at).toISOString()).json(view.vms);
  });

  // Everything under a peer's name is answered by that peer's own manager.
  r.use('/nodes/:node', forwardToPeer(deps));

  r.get('/nodes/:node/vms', async (req, res) => {
    res.json(await local(req).inventory.list());
  });

  r.get('/nodes/:node/create-options', async (req, res) => {
    const o = await local(req).facts.createOptions();
    res.json({ ...o, limits: { ...o.limits, osVariants: undefined } });
  });

  r.get('/nodes/:node/vms/:vm', async (req, res) => {
    res.json(await local(req).inventory.get(String(req.params.vm)));
  });

  r.get('/nodes/:node/vms/:vm/stats', async (req, res) => {
    const n = local(req);
    res.json(await deps.stats.history(req.params.vm, queryOf(req).range, (vm) => n.inventory.get(vm).then(() => true, () => false)));
  });

  r.post('/nodes/:node/vms', async (req, res) => {
    const job = await local(req).creator.request(bodyOf(req), requestUser(req));
    await sendJob(req, res, job);
  });

  r.post('/nodes/:node/vms/:vm/start', async (req, res) => {
    await sendJob(req, res, await local(req).power.start(req.params.vm, requestUser(req), bodyOf(req)));
  });

  r.post('/nodes/:node/vms/:vm/shutdown', async (req, res) => {
    await sendJob(req, res, await local(req).power.shutdown(req.params.vm, bodyOf(req), requestUser(req)));
  });

  r.post('/nodes/:node/vms/:vm/poweroff', async (req, res) => {
    await sendJob(req, res, await local(req).power.poweroff(req.params.vm, requestUser(req), bodyOf(req)));
  });

  r.delete('/nodes/:node/vms/:vm', async (req, res) => {
    await sendJob(req, res, await local(req).power.delete(req.params.vm, queryOf(req), requestUser(req)));
  });

  r.post('/nodes/:node/vms/:vm/migrate/check', async (req, res) => {
    local(req);
    res.json(await deps.migrator.check(req.params.vm, bodyOf(req)));
  });

  r.post('/nodes/:node/vms/:vm/migrate', async (req, res) => {
    local(req);
    await sendJob(req, res, await deps.migrator.request(req.params.vm, bodyOf(req), requestUser(req)));
  });

  maintenanceApi(r, deps, local, sendJob);

  const abortJob = async (req: Request, res: import('express').Response) => {
    res.json({ job: await jobs.abort(requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id')) });
  };
  r.post('/jobs/:id/abort', abortJob);
  r.post('/nodes/:node/jobs/:id/abort', (req, res) => (local(req), abortJob(req, res)));

  r.get('/jobs/:id/events', (req, res) => streamJobEvents(req, res, deps));
  r.get('/nodes/:node/jobs/:id/events', (req, res) => (local(req), streamJobEvents(req, res, deps)));

  r.get('/jobs', (req, res) => {
    const q = queryOf(req);
    const limit = q.limit === undefined ? 50 : requireInt('limit', q.limit, 1, 500, 'limit');
    const vm = typeof q.vm === 'string' ? q.vm : undefined;
    res.json(jobsRepo.recent(limit, vm ? { vm } : {}));
  });

  const getJob = async (req: Request, res: import('express').Response) => {
    const id = requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id');
    const wait = queryOf(req).wait;
    const job = wait === undefined ? jobsRepo.get(id) : await jobs.waitFor(id, requireInt('wait', wait, 0, MAX_WAIT_SEC, 'wait') * 1000);
    if (!job) throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist.`);
    res.json(job);
  };
  r.get('/jobs/:id', getJob);
  r.get('/nodes/:node/jobs/:id', (req, res) => (local(req), getJob(req, res)));

  r.use((_req, _res, next) => next(new AppError('NOT_FOUND', 'No such API endpoint.')));
  return r;
}
