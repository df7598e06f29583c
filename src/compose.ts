import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import { openDatabase, type Db } from './adapters/db/database.js';
import { JobsRepository, VmBusyError } from './adapters/db/jobs-repository.js';
import { LibvirtConnection } from './adapters/libvirt/connection.js';
import { createCommandRunner, type CommandRecord } from './adapters/process/run-command.js';
import { QemuImg } from './adapters/qemu-img/qemu-img.js';
import { VirtInstall } from './adapters/virt-install/virt-install.js';
import { Virsh } from './adapters/virsh/virsh.js';
import { JobRunner } from './services/job-runner.js';
import { LocalNode } from './services/local-node.js';
import { realSleep } from './services/node-context.js';
import { PeerDirectory } from './services/migration/peer-nodes.js';
import { watchConfigPeers } from './services/join/config-watch.js';
import { readPeerCredentials } from './adapters/files/peer-credentials.js';
import { VmMigrator } from './services/migration/migrate-vm.js';
import { NodeActions } from './services/nodes/node-actions.js';
import { MigrationReconciler } from './services/migration/reconcile.js';
import { LeftoverJanitor } from './services/migration/leftovers.js';
import { resumeWhenFree } from './services/migration/live-copy.js';
import { ConsoleService } from './services/console/console-service.js';
import { VncEndpoints } from './services/console/vnc-endpoint.js';
import { VmWhereabouts } from './services/console/vm-whereabouts.js';
import { VpnService } from './services/vpn.js';
import type { Logger } from './log.js';
import type { AppDeps } from './app.js';
import { openStatsDatabase } from './adapters/db/stats-db.js';
import { StatsReader } from './adapters/db/stats-reader.js';
import { VmStatsService } from './services/vm-stats.js';
import { MaintenanceRepository } from './adapters/db/maintenance-repository.js';
import { refusesWork } from './domain/maintenance/record.js';
import { maintenanceSentence } from './domain/maintenance/sentences.js';
import { MaintenanceService } from './services/maintenance/maintenance-service.js';
import { MaintenancePlanner } from './services/maintenance/planner.js';
import type { WorkRefusal } from './services/local-node.js';
import { loadProxySecret, RequestTrust } from './web/proxy-trust.js';
import { Inventory } from './services/inventory/inventory.js';
import { InventoryEvents } from './web/inventory-events.js';

export interface Composed extends AppDeps {
  db: Db;
  reconciler: MigrationReconciler;
  janitor: LeftoverJanitor;
  close(): Promise<void>;
}

/** Builds every adapter and service from the config: shared by main.ts and the tests. */
export function compose(config: Config, log: Logger, opts: { onCommand?: (r: CommandRecord) => void; sleep?: (ms: number) => Promise<void>; now?: () => number } = {}): Composed {
  for (const dir of [config.dataDir, config.imageDir, config.isoDir]) mkdirSync(dir, { recursive: true });
  const db = openDatabase(join(config.dataDir, 'kvm-ferry.sqlite'));
  const run = createCommandRunner((r) => {
    log.debug('command', { file: r.file, args: r.args });
    opts.onCommand?.(r);
  });
  const conn = new LibvirtConnection(config.libvirtUri, config.libvirtTimeoutSec * 1000);
  const jobsRepo = new JobsRepository(db);
  const jobs = new JobRunner(jobsRepo, log);
  const peers = new PeerDirectory(config, (r) => opts.onCommand?.(r));
  const maintenanceRepo = new MaintenanceRepository(db);
  // Read from SQLite on each request: the marker is the one a restart keeps.
  const refusal: WorkRefusal = (what) => (refusesWork(maintenanceRepo.get(config.nodeName).state) ? maintenanceSentence(config.nodeName, what) : null);
  const node = new LocalNode({
    config,
    conn,
    virsh: new Virsh(run, config.libvirtUri),
    qemuImg: new QemuImg(run),
    virtInstall: new VirtInstall(run, config.virtInstallTimeoutSec * 1000),
    jobs,
    run,
    log,
    sleep: opts.sleep ?? realSleep,
  }, refusal);
  const vpn = new VpnService(config, run, opts.sleep ?? realSleep);
  if (vpn.configured) peers.setGate((p) => vpn.blockReason(p));
  const migrator = new VmMigrator(node.ctx, node.inventory, peers, jobsRepo);
  const maintenance = new MaintenanceService(node.ctx, node.inventory, peers, maintenanceRepo,
    new MaintenancePlanner(node.ctx, node.inventory, peers, migrator, jobsRepo), { jobs, jobsRepo, migrator });
  const actions = new NodeActions(node, peers, migrator, jobsRepo, jobs);
  const reconciler = new MigrationReconciler(node.ctx, peers, jobsRepo, jobs, migrator);
  const janitor = new LeftoverJanitor(jobsRepo, peers, async (uuid) => {
    node.inventory.invalidate();
    return (await node.inventory.list()).some((v) => v.uuid === uuid);
  }, log, async (vm, message, work) => {
    // The VM's job lock, as every action takes it: no migration can start meanwhile.
    let row;
    try {
      row = jobsRepo.start({ kind: 'cleanup', node: config.nodeName, vm, user: null, params: {}, message });
    } catch (e) {
      if (e instanceof VmBusyError) return null;
      throw e;
    }
    try {
      const r = await work();
      jobsRepo.finish(row.id, 'ok', message.replace(/^Removing/, 'Removed').replace(/…$/, '.'));
      return r;
    } catch (e) {
      jobsRepo.finish(row.id, 'failed', `${message.replace(/…$/, '')} failed; kvm-ferry retries.`, String(e));
      throw e;
    }
  }, (uuid) => resumeWhenFree(node.ctx, uuid));
  // Written by the stats daemon (its own process); the manager only reads it.
  const statsDb = openStatsDatabase(config.dataDir);
  const stats = new VmStatsService(new StatsReader(statsDb, config.stats.intervalSec), config.nodeName);
  const consoleService = new ConsoleService(
    new VncEndpoints(config.nodeName, conn, peers),
    new VmWhereabouts(config.nodeName, node.inventory, jobsRepo, peers),
    opts.now ?? Date.now,
  );
  // Started here: the page is drawn from it from the first request on.
  const inventory = new Inventory({ config, node, peers, jobs, vpn, log });
  const inventoryEvents = new InventoryEvents(inventory.cache, { agesMs: config.inventoryRefreshSec * 1000 });
  inventory.start();
  const trust = new RequestTrust(loadProxySecret(config.dataDir), config.allowedHosts, config.listenHost, (n) => peers.get(n) !== null, (n) => readPeerCredentials(config.dataDir)[n] ?? null);
  // invite/join/remove rewrite peers: in the config file (the single source of truth), re-read here without a restart.
  const stopWatching = watchConfigPeers(config, peers, log, 1000, () => inventory.peersChanged());
  return {
    config,
    trust,
    node,
    peers,
    migrator,
    maintenance,
    actions,
    reconciler,
    janitor,
    stats,
    console: consoleService,
    vpn,
    inventory,
    inventoryEvents,
    jobs,
    jobsRepo,
    log,
    db,
    async close() {
      inventory.stop();
      inventoryEvents.close();
      janitor.stop();
      stopWatching();
      await jobs.drain();
      await conn.close();
      db.close();
      statsDb.close();
    },
  };
}
