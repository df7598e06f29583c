import { AppError } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import type { Vm } from '../../domain/vm.js';
import type { LocalNode } from '../local-node.js';
import type { VmMigrator } from '../migration/migrate-vm.js';
import type { PeerDirectory } from '../migration/peer-nodes.js';
import type { JobsRepository } from '../../adapters/db/jobs-repository.js';
import type { JobRunner } from '../job-runner.js';

export type VmVerb = 'start' | 'shutdown' | 'poweroff' | 'delete' | 'migrate';

/**
 * The same use cases on whichever node owns the VM: this node runs them itself, a
 * peer's own manager runs them for it. The page never needs to know which.
 */
export class NodeActions {
  constructor(
    private readonly local: LocalNode,
    private readonly peers: PeerDirectory,
    private readonly migrator: VmMigrator,
    private readonly jobsRepo: JobsRepository,
    private readonly jobs: JobRunner,
  ) {}

  /** Every node this page can show: this one first, then the peers in config order. */
  nodeNames(): string[] {
    return [this.local.name, ...this.peers.all().map((p) => p.name)];
  }

  isLocal(node: string): boolean {
    return node === this.local.name;
  }

  async listVms(node: string): Promise<Vm[]> {
    if (this.isLocal(node)) return this.local.inventory.list();
    // A peer behind a stopped tunnel is known to be unreachable: say why at once.
    const blocked = await this.peers.get(node)?.blockedReason();
    if (blocked) throw new AppError('NODE_UNREACHABLE', blocked);
    return this.remote(node).listVms();
  }

  async vmAction(node: string, vm: string, verb: VmVerb, body: Record<string, unknown>, user: string | null): Promise<Job> {
    if (!this.isLocal(node)) {
      const remote = this.remote(node);
      if (verb === 'delete') return remote.deleteVm(vm, stringValues(body), user);
      return remote.vmAction(vm, verb, body, user);
    }
    const { power } = this.local;
    switch (verb) {
      case 'start':
        return power.start(vm, user, body);
      case 'shutdown':
        return power.shutdown(vm, body, user);
      case 'poweroff':
        return power.poweroff(vm, user, body);
      case 'delete':
        return power.delete(vm, body, user);
      case 'migrate':
        return this.migrator.request(vm, body, user);
    }
  }

  migrateCheck(node: string, vm: string, body: Record<string, unknown>): Promise<unknown> {
    return this.isLocal(node) ? this.migrator.check(vm, body) : this.remote(node).migrateCheck(vm, body);
  }

  async getJob(node: string, id: number): Promise<Job> {
    if (!this.isLocal(node)) return this.remote(node).getJob(id);
    const job = this.jobsRepo.get(id);
    if (!job) throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist.`);
    return job;
  }

  abortJob(node: string, id: number, user: string | null): Promise<Job> {
    return this.isLocal(node) ? this.jobs.abort(id) : this.remote(node).abortJob(id, user);
  }

  private remote(node: string) {
    const peer = this.peers.get(node);
    if (!peer) throw new AppError('NODE_NOT_FOUND', `Node ${node} is not known to this manager.`);
    return peer.remote;
  }
}

function stringValues(body: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => typeof v === 'string' || typeof v === 'boolean').map(([k, v]) => [k, String(v)]));
}
