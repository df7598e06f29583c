import './threadpool.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { compose } from './compose.js';
import { createApp } from './app.js';
import { reconcileOrphanJobs } from './services/orphan-jobs.js';

const JANITOR_INTERVAL_MS = 15_000;
import { attachConsoleWebsocket } from './web/console-ws.js';

/** Composition root: config → db → adapters → app → listen. */
async function main(): Promise<void> {
  const log = createLogger({ level: process.env.KVM_FERRY_LOG_LEVEL === 'debug' ? 'debug' : 'info' });
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`kvm-ferry: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const deps = compose(config, log);
  // Migrations first: libvirt may still be moving the VM, and that job is followed, not failed.
  const adopted = deps.reconciler.reconcile();
  if (adopted.length) log.warn('migrations interrupted by the previous run are being reconciled with libvirt', { ids: adopted });
  deps.janitor.start(JANITOR_INTERVAL_MS);
  void deps.janitor.runOnce();
  const orphans = await reconcileOrphanJobs(deps.node.ctx, deps.peers);
  if (orphans.length) log.warn('jobs interrupted by the previous run reconciled with libvirt', { jobs: orphans.map((j) => ({ id: j.id, kind: j.kind, vm: j.vm, state: j.state })) });
  // After the orphans are settled: an evacuation or homecoming goes on from its stored moves.
  const resumed = deps.maintenance.resume();
  if (resumed) log.warn('maintenance run interrupted by the previous run continues', { jobId: resumed.id });

  const app = createApp(deps);
  const server = app.listen(config.listenPort, config.listenHost, () => {
    log.info('kvm-ferry listening', { url: `http://${config.listenHost}:${config.listenPort}`, node: config.nodeName, libvirt: config.libvirtUri, config: config.source });
    if (!/^(127\.|::1$|localhost$)/.test(config.listenHost)) {
      // The app has no login of its own: nginx's basic auth is the only door.
      log.warn('listening on a non-loopback address: anyone who can reach it manages VMs without a password; keep listenHost 127.0.0.1 behind nginx', { host: config.listenHost });
    }
  });
  const consoles = attachConsoleWebsocket(server, deps);
  server.on('error', (e) => {
    log.error('cannot listen', { error: e.message, host: config.listenHost, port: config.listenPort });
    process.exit(1);
  });

  const stop = (signal: string) => {
    log.info('stopping', { signal });
    consoles.close();
    server.close();
    void deps.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`kvm-ferry: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
