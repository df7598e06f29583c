import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import type { AppDeps } from '../app.js';
import { requireInt } from '../domain/numbers.js';
import type { Job } from '../domain/job.js';
import type { CreateOptions } from '../services/host-facts.js';
import type { VmVerb } from '../services/nodes/node-actions.js';
import { toAppError } from './error-handler.js';
import { bodyOf, requestUser } from './request-context.js';
import { statsPageRoutes } from './stats-pages.js';
import { jobView } from './job-view.js';
import { PeerRowsCache } from './peer-rows.js';

const ACTIVITY_ROWS = 15;
/** Only the first pages after start-up wait (at most this long) for the first inventory round. */
const FIRST_ROUND_WAIT_MS = 3_000;
/** A page drawn just after a job ended waits at most this long for the re-read of the nodes it touched. */
const AFTER_JOB_WAIT_MS = 2_000;

interface PageState {
  status?: number;
  error?: AppError;
  form?: Record<string, unknown>;
}

/**
 * Server-rendered page: works without JavaScript; every action is a form POST, then redirect.
 * The VM lists come from the inventory cache: drawing the page asks no node anything (no SSH,
 * no libvirt); each node shows how old its view is.
 */
export function pageRoutes(deps: AppDeps): Router {
  const r = Router();
  const { node, jobsRepo, log, actions, inventory } = deps;
  let app: import('express').Application | null = null;
  const peerRows = new PeerRowsCache(() => app!);

  async function renderIndex(req: Request, res: Response, state: PageState = {}) {
    const [options, vpn] = await Promise.all([
      inventory.createOptions.get().then((o): CreateOptions | AppError => o, (e) => toAppError(e, log)),
      inventory.vpnStatus.get().catch((e) => ({ configured: false as const, error: toAppError(e, log) })),
    ]);
    await Promise.all([inventory.cache.ready(FIRST_ROUND_WAIT_MS), inventory.settled(AFTER_JOB_WAIT_MS)]);
    const nodes = inventory.cache.views();
    const focusJob = await focusedJob(req);
    const jobs = jobsRepo.recent(ACTIVITY_ROWS);
    const running = jobs.some((j) => j.state === 'running') || focusJob?.state === 'running';
    const own = nodes.find((n) => n.local);
    const localVms = own && own.state === 'active' ? own.vms : null;
    const sparks = localVms ? deps.stats.rowSparks(localVms) : new Map();
    app = req.app;
    const nodeNames = actions.nodeNames();
    const token = String(res.locals.csrfToken ?? '');
    const rows = new Map<string, string>();
    for (const n of nodes) {
      if (!n.local && n.state !== 'never') rows.set(n.name, PeerRowsCache.fill(await peerRows.rows(n.name, n.vms, nodeNames), token));
    }
    res.status(state.status ?? 200).render('index', {
      nodeName: node.name,
      nodes,
      now: Date.now(),
      nodeNames,
      peerRows: rows,
      sparks,
      totals: localVms ? deps.stats.totals(localVms, sparks) : null,
      options,
      vpn,
      jobs,
      focusJob,
      running,
      // Pages with JavaScript follow /events; the no-JS page keeps its meta refresh.
      liveEvents: true,
      error: state.error ?? null,
      form: state.form ?? {},
    });
  }

  async function focusedJob(req: Request): Promise<Job | null> {
    const id = typeof req.query.job === 'string' && /^\d{1,12}$/.test(req.query.job) ? Number(req.query.job) : null;
    if (id === null) return null;
    const on = typeof req.query.node === 'string' ? req.query.node : node.name;
    return actions.getJob(on, id).catch(() => null);
  }

  /**
   * After a POST: redirect so a reload does not repeat the action; the job shows at the top.
   * No `#job` fragment: a meta refresh re-targets the current URL, and with a fragment
   * browsers treat that as a same-document scroll, so the page would never refresh.
   */
  const afterAction = (res: Response, job: Job) =>
    res.redirect(303, job.kind === 'migrate' ? jobPath(job.node, job.id) : `/?job=${job.id}${job.node === node.name ? '' : `&node=${encodeURIComponent(job.node)}`}`);

  const onFormError = async (req: Request, res: Response, e: unknown, form?: Record<string, unknown>) => {
    const err = toAppError(e, log);
    await renderIndex(req, res, { status: err.httpStatus, error: err, ...(form ? { form } : {}) });
  };

  const knownNode = (req: Request): string => {
    const name = String(req.params.node);
    if (!actions.nodeNames().includes(name)) throw new AppError('NODE_NOT_FOUND', `Node ${name} is not known to this manager.`);
    return name;
  };

  r.get('/', (req, res) => renderIndex(req, res));

  r.post('/nodes/:node/vms', async (req, res) => {
    const body = bodyOf(req);
    try {
      if (req.params.node !== node.name) throw new AppError('NODE_NOT_FOUND', `VMs are created on node ${String(req.params.node)} from its own page.`);
      afterAction(res, await node.creator.request(body, requestUser(req)));
    } catch (e) {
      await onFormError(req, res, e, body);
    }
  });

  for (const verb of ['start', 'shutdown', 'poweroff', 'delete', 'migrate'] as const satisfies readonly VmVerb[]) {
    r.post(`/nodes/:node/vms/:vm/${verb}`, async (req, res) => {
      try {
        const on = knownNode(req);
        const job = await actions.vmAction(on, String(req.params.vm), verb, lastValues(bodyOf(req)), requestUser(req));
        if (!actions.isLocal(on)) inventory.watchPeerJob(on, job);
        afterAction(res, job);
      } catch (e) {
        await onFormError(req, res, e);
      }
    });
  }

  /** Pre-flight, shown before anything starts: every check with its go/no-go sentence. */
  r.get('/nodes/:node/vms/:vm/migrate', async (req, res) => {
    const on = knownNode(req);
    const vm = String(req.params.vm);
    const to = typeof req.query.to === 'string' ? req.query.to : '';
    const mode = req.query.mode === 'offline' || req.query.mode === 'live' ? req.query.mode : undefined;
    // The fixes the plan offers (eject / copy media) come back as flags on the same page.
    const flags = Object.fromEntries((['ejectMedia', 'copyMedia'] as const).filter((f) => req.query[f] === '1').map((f) => [f, true]));
    let check: unknown = null;
    let error: AppError | null = null;
    try {
      // Policy and cap are checked by the migrator (400 with a sentence on a bad value).
      const conv = Object.fromEntries((['policy', 'bandwidthMiBps', 'xbzrle'] as const).filter((k) => typeof req.query[k] === 'string' && req.query[k] !== '').map((k) => [k, req.query[k] as string]));
      check = await actions.migrateCheck(on, vm, { to, ...(mode ? { mode } : {}), ...flags, ...conv });
    } catch (e) {
      error = toAppError(e, log);
    }
    res.status(error ? error.httpStatus : 200).render('migrate', { nodeName: node.name, on, vm, to, check, error, flags, nodeNames: actions.nodeNames() });
  });

  r.get('/nodes/:node/jobs/:id', async (req, res) => {
    const on = knownNode(req);
    const job = await actions.getJob(on, requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id'));
    res.render('job', { nodeName: node.name, on, job, view: jobView(job), running: job.state === 'running' });
  });

  r.post('/nodes/:node/jobs/:id/abort', async (req, res) => {
    const on = knownNode(req);
    const id = requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id');
    await actions.abortJob(on, id, requestUser(req));
    res.redirect(303, jobPath(on, id));
  });

  r.use(statsPageRoutes(deps));

  r.get('/jobs', (_req, res) => {
    res.render('jobs', { nodeName: node.name, jobs: jobsRepo.recent(200) });
  });

  r.get('/jobs/:id', (req, res) => {
    res.redirect(302, jobPath(node.name, requireInt('id', req.params.id, 1, Number.MAX_SAFE_INTEGER, 'Job id')));
  });

  return r;
}

function jobPath(node: string, id: number): string {
  return `/nodes/${encodeURIComponent(node)}/jobs/${id}`;
}

/** A checkbox after a hidden input of the same name posts both; the last one is what the user chose. */
function lastValues(body: Record<string, unknown>): Record<string, unknown> {
  // The form token has done its job here; a peer's API must not see it.
  return Object.fromEntries(Object.entries(body).filter(([k]) => k !== '_csrf').map(([k, v]) => [k, Array.isArray(v) ? v[v.length - 1] : v]));
}
