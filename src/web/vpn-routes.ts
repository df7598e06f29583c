import { Router } from 'express';
import type { AppDeps } from '../app.js';
import { toAppError } from './error-handler.js';

/** GET /api/vpn, POST /api/vpn/start|stop: this node's one OpenVPN instance. Short, so answered directly (no job). */
export function vpnApiRoutes(deps: AppDeps): Router {
  const r = Router();
  r.get('/vpn', async (_req, res) => {
    res.json(await deps.vpn.status());
  });
  r.post('/vpn/start', async (_req, res) => {
    const vpn = await deps.vpn.start();
    await deps.inventory.vpnChanged();
    deps.log.info('vpn started', { pid: vpn.pid, address: vpn.address });
    res.json(vpn);
  });
  r.post('/vpn/stop', async (_req, res) => {
    const vpn = await deps.vpn.stop();
    await deps.inventory.vpnChanged();
    deps.log.info('vpn stopped');
    res.json(vpn);
  });
  return r;
}

/** The page's Start/Stop forms: POST, then back to the page (works without JavaScript). */
export function vpnPageRoutes(deps: AppDeps): Router {
  const r = Router();
  for (const verb of ['start', 'stop'] as const) {
    r.post(`/vpn/${verb}`, async (_req, res) => {
      try {
        await (verb === 'start' ? deps.vpn.start() : deps.vpn.stop());
        await deps.inventory.vpnChanged();
        deps.log.info(`vpn ${verb === 'start' ? 'started' : 'stopped'} from the page`);
        res.redirect(303, '/');
      } catch (e) {
        const err = toAppError(e, deps.log);
        res.status(err.httpStatus).render('error', { nodeName: deps.node.name, error: err });
      }
    });
  }
  return r;
}
