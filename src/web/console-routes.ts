import express, { Router, type RequestHandler } from 'express';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ConsoleService } from '../services/console/console-service.js';

/**
 * noVNC's own ES modules, served by the app from node_modules (no CDN): `core/` and
 * `vendor/` side by side, because core imports `../vendor/pako/…`.
 */
export function novncStatic(): Router {
  const root = dirname(dirname(createRequire(import.meta.url).resolve('@novnc/novnc')));
  const r = Router();
  for (const dir of ['core', 'vendor']) r.use(`/${dir}`, express.static(join(root, dir), { maxAge: '1h', index: false }));
  return r;
}

/** JSON: whether a console can open (and where the VM went if not), and one-time tickets. */
export function consoleApiRoutes(deps: { console: ConsoleService }): Router {
  const r = Router();
  const noStore: RequestHandler = (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  };
  r.get('/nodes/:node/vms/:vm/console', noStore, async (req, res) => {
    res.json(await deps.console.status(req.params.node, req.params.vm, req.hostname));
  });
  r.post('/nodes/:node/vms/:vm/console', noStore, async (req, res) => {
    res.status(201).json(await deps.console.issue(req.params.node, req.params.vm));
  });
  return r;
}

/** The console page; public/console.js asks for a ticket and opens noVNC. */
export function consolePageRoutes(deps: { console: ConsoleService; node: { name: string } }): Router {
  const r = Router();
  r.get('/nodes/:node/vms/:vm/console', async (req, res) => {
    const status = await deps.console.status(req.params.node, req.params.vm, req.hostname);
    res.set('Cache-Control', 'no-store');
    res.render('console', { nodeName: deps.node.name, status, running: false });
  });
  return r;
}
