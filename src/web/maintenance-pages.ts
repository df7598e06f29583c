import { Router, type Request } from 'express';
import { AppError } from '../errors.js';
import type { AppDeps } from '../app.js';
import { toAppError } from './error-handler.js';
import { bodyOf, requestUser } from './request-context.js';

/**
 * The maintenance page of this node: plan (adjustable, nothing moves), start, watch
 * (each move's bar, overall time left; live over the status events), abort, end.
 */
export function maintenancePageRoutes(deps: AppDeps): Router {
  const r = Router();
  const { node, log, maintenance } = deps;
  const path = `/nodes/${encodeURIComponent(node.name)}/maintenance`;
  const own = (req: Request) => {
    if (req.params.node !== node.name) throw new AppError('NODE_NOT_FOUND', `Maintenance of node ${String(req.params.node)} is run from its own page.`);
  };
  const form = (req: Request) => Object.fromEntries(Object.entries(bodyOf(req)).filter(([k]) => k !== '_csrf'));

  r.get('/nodes/:node/maintenance', async (req, res) => {
    own(req);
    const status = await maintenance.status();
    const wantPlan = status.state === 'normal' && req.query.plan === '1';
    let plan = null;
    let error = null;
    if (wantPlan) {
      try {
        plan = await maintenance.plan(req.query as Record<string, unknown>);
      } catch (e) {
        error = toAppError(e, log);
      }
    }
    const running = status.state === 'evacuating' || status.state === 'returning';
    res.status(error ? error.httpStatus : 200).render('maintenance', {
      nodeName: node.name, status, plan, error, running, liveEvents: running, peers: deps.peers.all().map((p) => p.name), path,
    });
  });

  const act = (verb: 'start' | 'end' | 'abort') => r.post(`/nodes/:node/maintenance/${verb}`, async (req, res) => {
    own(req);
    try {
      if (verb === 'start') await maintenance.start(form(req), requestUser(req));
      else if (verb === 'end') await maintenance.end(form(req), requestUser(req));
      else await maintenance.abort();
      res.redirect(303, path);
    } catch (e) {
      const error = toAppError(e, log);
      res.status(error.httpStatus).render('maintenance', { nodeName: node.name, status: await maintenance.status(), plan: null, error, running: false, liveEvents: false, peers: deps.peers.all().map((p) => p.name), path });
    }
  });
  act('start');
  act('end');
  act('abort');
  return r;
}
