import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { VmInventory } from '../vm-inventory.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';

export interface MovedTo {
  node: string;
  /** The console on the new node, served (and tunnelled) by this manager. */
  consolePath: string;
  /** The same console on the new node's own manager, when peers[].url is configured. */
  peerUrl: string | null;
}

const JOBS_LOOKED_AT = 50;

/**
 * Where a VM went when it is no longer where the console expected it, from what this
 * node knows for sure: its own record of a finished migration, or the VM now being here.
 */
export class VmWhereabouts {
  constructor(
    private readonly localName: string,
    private readonly inventory: VmInventory,
    private readonly jobs: JobsRepository,
    private readonly peers: PeerDirectory,
  ) {}

  async movedTo(fromNode: string, vm: string): Promise<MovedTo | null> {
    if (fromNode !== this.localName && (await this.inventory.find(vm).catch(() => null))) return this.link(this.localName, vm);
    if (fromNode !== this.localName) return null;
    // The newest job that decided where the VM lives: a migration (one still verifying counts,
    // the VM has left once libvirt switched it over), or a delete or create on this node.
    const last = this.jobs
      .recent(JOBS_LOOKED_AT, { node: this.localName, vm })
      .find((j) => (j.kind === 'migrate' && j.state !== 'failed') || ((j.kind === 'delete' || j.kind === 'create') && j.state === 'ok'));
    const to = last?.kind === 'migrate' ? last.params.to : undefined;
    return typeof to === 'string' && this.peers.get(to) ? this.link(to, vm) : null;
  }

  private link(node: string, vm: string): MovedTo {
    const consolePath = consolePathOf(node, vm);
    const url = this.peers.get(node)?.config.url;
    return { node, consolePath, peerUrl: url ? `${url.replace(/\/+$/, '')}${consolePath}` : null };
  }
}

export function consolePathOf(node: string, vm: string): string {
  return `/nodes/${encodeURIComponent(node)}/vms/${encodeURIComponent(vm)}/console`;
}
