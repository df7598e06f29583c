import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { compose } from './compose.js';
import { createApp } from './app.js';
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
  const orphans = deps.jobs.failOrphans();
  if (orphans.length) log.warn('jobs interrupted by the previous run marked failed', { ids: orphans.map((j) => j.id) });

  const app = createApp(deps);
  const server = app.listen(config.listenPort, config.listenHost, () => {
    log.info('kvm-ferry listening', { url: `http://${config.listenHost}:${config.listenPort}`, node: config.nodeName, libvirt: config.libvirtUri, config: config.source });
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
