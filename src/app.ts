import { nodeJoinApiRoutes, nodeJoinPageRoutes } from './web/node-join-routes.js';
import express, { type ErrorRequestHandler } from 'express';
import { join } from 'node:path';
import type { Config } from './config.js';
import type { JobsRepository } from './adapters/db/jobs-repository.js';
import type { JobRunner } from './services/job-runner.js';
import type { LocalNode } from './services/local-node.js';
import type { Logger } from './log.js';
import type { PeerDirectory } from './services/migration/peer-nodes.js';
import type { VmMigrator } from './services/migration/migrate-vm.js';
import type { MaintenanceService } from './services/maintenance/maintenance-service.js';
import type { NodeActions } from './services/nodes/node-actions.js';
import type { VmStatsService } from './services/vm-stats.js';
import type { VpnService } from './services/vpn.js';
import { projectRoot } from './paths.js';
import { apiRoutes } from './web/api-routes.js';
import { pageRoutes } from './web/page-routes.js';
import { maintenancePageRoutes } from './web/maintenance-pages.js';
import { vpnApiRoutes, vpnPageRoutes } from './web/vpn-routes.js';
import { apiErrorHandler, toAppError } from './web/error-handler.js';
import { apiContentTypes, sameOriginOnly } from './web/guards.js';
import { viewHelpers } from './web/view-helpers.js';
import { CsrfTokens, csrfForms, loadCsrfSecret } from './web/csrf.js';
import type { ConsoleService } from './services/console/console-service.js';
import type { RequestTrust } from './web/proxy-trust.js';
import { trustRequests } from './web/request-context.js';
import { consoleApiRoutes, consolePageRoutes, novncStatic } from './web/console-routes.js';
import type { Inventory } from './services/inventory/inventory.js';
import { inventoryEventRoute, type InventoryEvents } from './web/inventory-events.js';

export interface AppDeps {
  config: Config;
  node: LocalNode;
  jobs: JobRunner;
  jobsRepo: JobsRepository;
  peers: PeerDirectory;
  migrator: VmMigrator;
  maintenance: MaintenanceService;
  actions: NodeActions;
  stats: VmStatsService;
  console: ConsoleService;
  vpn: VpnService;
  /** Every node's VMs and this node's page facts, kept fresh in the background. */
  inventory: Inventory;
  /** Pushes inventory changes to open pages (GET /events). */
  inventoryEvents: InventoryEvents;
  /** Who a request is from and which Host names the manager answers to. */
  trust: RequestTrust;
  log: Logger;
}

const BODY_LIMIT = '64kb';

/** Builds the Express app without listening, so tests drive it in-process. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  const root = projectRoot();
  app.disable('x-powered-by');
  app.set('views', join(root, 'views'));
  app.set('view engine', 'ejs');
  // Templates ship with the release; recompiling them per request cost ~30% of a page render.
  app.set('view cache', true);
  app.locals.h = viewHelpers;

  app.use((_req, res, next) => {
    res.set({
      'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'same-origin',
    });
    next();
  });
  app.use(trustRequests(deps.trust));
  app.use('/static/vendor/novnc', novncStatic());
  app.use('/static', express.static(join(root, 'public'), { maxAge: '1h', index: false }));
  // uPlot for the VM charts, served from the installed package: no CDN.
  app.use('/static/vendor/uplot', express.static(join(root, 'node_modules', 'uplot', 'dist'), { maxAge: '1h', index: false }));

  app.get('/healthz', async (_req, res) => {
    const s = await deps.node.status();
    res.status(s.status === 'up' ? 200 : 503).json({ ok: s.status === 'up', node: s.name, libvirt: s.status, ...(s.reason ? { reason: s.reason } : {}) });
  });

  app.use(sameOriginOnly(deps.trust));
  app.get('/events', inventoryEventRoute(deps));
  app.use('/api', apiContentTypes, express.json({ limit: BODY_LIMIT, strict: true }), express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 50 }));
  app.use('/api', consoleApiRoutes(deps));
  app.use('/api', vpnApiRoutes(deps));
  app.use('/api', nodeJoinApiRoutes(deps));
  app.use('/api', apiRoutes(deps));
  app.use('/api', apiErrorHandler(deps.log));

  app.use(express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 50 }));
  app.use(csrfForms(new CsrfTokens(loadCsrfSecret(deps.config.dataDir))));
  app.use(vpnPageRoutes(deps));
  app.use(nodeJoinPageRoutes(deps));
  app.use(pageRoutes(deps));
  app.use(maintenancePageRoutes(deps));
  app.use(consolePageRoutes(deps));
  app.use((_req, res) => {
    res.status(404).render('error', { nodeName: deps.node.name, error: { message: 'This page does not exist.', detail: null } });
  });
  const pageErrors: ErrorRequestHandler = (err, _req, res, _next) => {
    const e = toAppError(err, deps.log);
    res.status(e.httpStatus).render('error', { nodeName: deps.node.name, error: e });
  };
  app.use(pageErrors);
  return app;
}
