import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import type { AppDeps } from '../app.js';
import { requireInt } from '../domain/numbers.js';
import type { Job } from '../domain/job.js';
import type { Vm } from '../domain/vm.js';
import type { CreateOptions } from '../services/host-facts.js';
import { toAppError } from './error-handler.js';
import { bodyOf, requestUser } from './request-context.js';

const ACTIVITY_ROWS = 15;

interface PageState {
  status?: number;
  error?: AppError;
  form?: Record<string, unknown>;
}

/** Server-rendered page: works without JavaScript; every action is a form POST, then redirect. */
export function pageRoutes(deps: AppDeps): Router {
  const r = Router();
  const { node, jobsRepo, log } = deps;

  async function renderIndex(req: Request, res: Response, state: PageState = {}) {
    const [vms, options, vpn] = await Promise.all([
      node.inventory.list().then((v): Vm[] | AppError => v, (e) => toAppError(e, log)),
      node.facts.createOptions().then((o): CreateOptions | AppError => o, (e) => toAppError(e, log)),
      deps.vpn.status().catch((e) => ({ configured: false as const, error: toAppError(e, log) })),
    ]);
    const jobParam = req.query.job;
    const focusJob = typeof jobParam === 'string' && /^\d{1,12}$/.test(jobParam) ? jobsRepo.get(Number(jobParam)) : null;
    const jobs = jobsRepo.recent(ACTIVITY_ROWS);
    const running = jobs.some((j) => j.state === 'running') || focusJob?.state === 'running';
    res.status(state.status ?? 200).render('index', {
      nodeName: node.name,
      vms,
      options,
      vpn,
      jobs,
      focusJob,
      running,
      error: state.error ?? null,
      form: state.form ?? {},
    });
  }

  /**
   * After a POST: redirect so a reload does not repeat the action; the job shows at the top.
   * No `#job` fragment: a meta refresh re-targets the current URL, and with a fragment
   * browsers treat that as a same-document scroll, so the page would never refresh.
   */
  const afterAction = (res: Response, job: Job) => res.redirect(303, `/?job=${job.id}`);

  const onFormError = async (req: Request, res: Response, e: unknown, form?: Record<string, unknown>) => {
    const err = toAppError(e, log);
    await renderIndex(req, res, { status: err.httpStatus, error: err, ...(form ? { form } : {}) });
  };

  const checkNode = (req: Request) => {
    if (req.params.node !== node.name) throw new AppError('NODE_NOT_FOUND', `Node ${String(req.params.node)} is not known to this manager.`);
  };

  r.get('/', (req, res) => renderIndex(req, res));

  r.post('/nodes/:node/vms', async (req, res) => {
    const body = bodyOf(req);
    try {
      checkNode(req);
      afterAction(res, await node.creator.request(body, requestUser(req)));
    } catch (e) {
      await onFormError(req, res, e, body);
    }
  });

  const action = (verb: string, run: (vm: string, body: Record<string, unknown>, user: string | null) => Promise<Job>) =>
    r.post(`/nodes/:node/vms/:vm/${verb}`, async (req, res) => {
      try {
        checkNode(req);
        afterAction(res, await run(String(req.params.vm), bodyOf(req), requestUser(req)));
      } catch (e) {
        await onFormError(req, res, e);
      }
    });

  action('start', (vm, _b, u) => node.power.start(vm, u));
  action('shutdown', (vm, b, u) => node.power.shutdown(vm, lastValues(b), u));
  action('poweroff', (vm, _b, u) => node.power.poweroff(vm, u));
  action('delete', (vm, b, u) => node.power.delete(vm, lastValues(b), u));

  r.get('/jobs', (_req, res) => {
    res.render('jobs', { nodeName: node.name, jobs: jobsRepo.recent(200) });
  });

  r.get('/jobs/:id', (req, res) => {
    const job = jobsRepo.get(requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id'));
    if (!job) throw new AppError('JOB_NOT_FOUND', `Job ${String(req.params.id)} does not exist.`);
    res.render('job', { nodeName: node.name, job, running: job.state === 'running' });
  });

  return r;
}

/** A checkbox after a hidden input of the same name posts both; the last one is what the user chose. */
function lastValues(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, Array.isArray(v) ? v[v.length - 1] : v]));
}
