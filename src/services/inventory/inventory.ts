import type { Config } from '../../config.js';
import type { Job } from '../../domain/job.js';
import { AppError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { CreateOptions } from '../host-facts.js';
import type { JobRunner } from '../job-runner.js';
import type { LocalNode } from '../local-node.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';
import type { VpnService } from '../vpn.js';
import { BackgroundValue } from './background-value.js';
import { InventoryCache, type NodeSource } from './inventory-cache.js';

/** How long a peer's job is watched for its end after an action started it from here. */
const PEER_JOB_POLL_MS = 1_000;
const PEER_JOB_WATCH_MAX_POLLS = 3_600;

/**
 * Everything the VM page shows, kept fresh in the background: every node's VMs (the
 * cache), this node's create-form facts and its VPN panel. Drawing the page reads only this.
 */
export class Inventory {
  readonly cache: InventoryCache;
  readonly createOptions: BackgroundValue<CreateOptions>;
  readonly vpnStatus: BackgroundValue<Awaited<ReturnType<VpnService['status']>>>;
  private readonly onJob = (job: Job | null) => {
    if (!job || job.state === 'running') return;
    // The VM moved or changed state: re-read the nodes the job touched, now.
    this.track(this.cache.refresh(job.node));
    // New disk images or ISOs show in the create form.
    if (job.node === this.deps.node.name) this.track(this.createOptions.refresh());
    const to = job.params?.to;
    if (typeof to === 'string') this.track(this.cache.refresh(to));
  };
  /** Refreshes started because a job ended: a page drawn right after the job waits for them. */
  private readonly afterJobs = new Set<Promise<void>>();

  private track(p: Promise<void>): void {
    this.afterJobs.add(p);
    void p.finally(() => this.afterJobs.delete(p));
  }

  /**
   * Waits (at most `maxMs`) for the re-reads a job's end started: a page drawn just after a
   * job ended must not show the VM's state from before it (the no-JS page stops refreshing then).
   */
  async settled(maxMs: number): Promise<void> {
    if (this.afterJobs.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.afterJobs]), new Promise((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
  }

  constructor(private readonly deps: { config: Config; node: LocalNode; peers: PeerDirectory; jobs: JobRunner; vpn: VpnService; log: Logger }) {
    const { config, node } = deps;
    const refreshMs = config.inventoryRefreshSec * 1000;
    // A peer's own list may take its libvirt timeout before it says "libvirt does not answer":
    // wait a little longer than that, so the page shows the peer's reason rather than ours.
    const timeoutMs = (config.libvirtTimeoutSec + 5) * 1000;
    this.cache = new InventoryCache(this.sources(), { refreshMs, timeoutMs });
    this.createOptions = new BackgroundValue(() => node.facts.createOptions(), refreshMs);
    this.vpnStatus = new BackgroundValue(() => deps.vpn.status(), refreshMs);
  }

  /** This node first, then every peer the directory lists now; a peer is looked up at each read (a reload may rebuild it). */
  private sources(): NodeSource[] {
    const { node, peers } = this.deps;
    return [
      { name: node.name, local: true, read: () => node.inventory.list() },
      ...peers.all().map((p): NodeSource => ({
        name: p.name,
        local: false,
        ...(p.config.url ? { url: p.config.url } : {}),
        read: async (ms) => {
          const peer = peers.get(p.name);
          if (!peer) throw new AppError('NODE_UNREACHABLE', `${p.name} is no longer a peer`);
          const blocked = await peer.blockedReason();
          if (blocked) throw new AppError('NODE_UNREACHABLE', blocked);
          return peer.remote.listVms(ms);
        },
      })),
    ];
  }

  /**
   * The VPN was started or stopped here: its panel and every peer reached through it change
   * now, so re-read them (a page drawn next waits for this, like after a job).
   */
  /**
   * The VPN was started or stopped here: the VPN panel is read again before this resolves
   * (at most `maxMs`), so the page drawn next shows the new state — the peers behind the
   * tunnel are re-read in the background, within the page's usual wait.
   */
  async vpnChanged(maxMs = 5_000): Promise<void> {
    const own = this.vpnStatus.refresh();
    this.track(own);
    for (const p of this.deps.peers.all()) this.track(this.cache.refresh(p.name));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([own.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
  }

  /** The peers were re-read from the config file (join/remove): follow the new list. */
  peersChanged(): void {
    this.cache.setSources(this.sources());
  }

  start(): void {
    this.cache.start();
    this.createOptions.start();
    this.vpnStatus.start();
    this.deps.jobs.on('update', this.onJob);
  }

  stop(): void {
    this.deps.jobs.off('update', this.onJob);
    this.cache.stop();
    this.createOptions.stop();
    this.vpnStatus.stop();
  }

  /**
   * A job a peer runs for an action started here: its end is only seen by asking, so ask
   * once a second (bounded) and re-read that peer when it is over.
   */
  watchPeerJob(peer: string, job: Job): void {
    const remote = this.deps.peers.get(peer)?.remote;
    if (!remote || job.state !== 'running') {
      void this.cache.refresh(peer);
      return;
    }
    let polls = 0;
    const poll = async (): Promise<void> => {
      polls++;
      const now = await remote.getJob(job.id).catch(() => null);
      if (now && now.state === 'running' && polls < PEER_JOB_WATCH_MAX_POLLS) {
        setTimeout(() => void poll(), PEER_JOB_POLL_MS).unref();
        return;
      }
      this.onJob(now ?? { ...job, state: 'failed' });
    };
    setTimeout(() => void poll(), PEER_JOB_POLL_MS).unref();
  }
}
