import { HostFacts } from './host-facts.js';
import type { NodeContext } from './node-context.js';
import { VmCreator } from './vm-create.js';
import { VmInventory } from './vm-inventory.js';
import { VmPower } from './vm-power.js';
import { nodeGetInfo } from '../adapters/libvirt/domain.js';
import { describeError } from '../errors.js';

/** Why the node refuses a new VM or a VM start right now (e.g. it is in maintenance), or null. */
export type WorkRefusal = (what: 'create' | 'start') => string | null;

export interface NodeStatus {
  name: string;
  local: boolean;
  status: 'up' | 'down';
  reason?: string;
  url?: string;
}

/** The use cases of the node this manager runs on. */
export class LocalNode {
  readonly inventory: VmInventory;
  readonly facts: HostFacts;
  readonly creator: VmCreator;
  readonly power: VmPower;

  /** `refusal` says why this node takes no new VMs or starts now (maintenance), or null. */
  constructor(readonly ctx: NodeContext, refusal: WorkRefusal = () => null) {
    this.inventory = new VmInventory(ctx);
    this.facts = new HostFacts(ctx);
    this.creator = new VmCreator(ctx, this.facts, this.inventory, refusal);
    this.power = new VmPower(ctx, this.inventory, refusal);
  }

  get name(): string {
    return this.ctx.config.nodeName;
  }

  async status(): Promise<NodeStatus> {
    try {
      await nodeGetInfo(this.ctx.conn);
      return { name: this.name, local: true, status: 'up' };
    } catch (e) {
      return { name: this.name, local: true, status: 'down', reason: describeError(e) };
    }
  }
}
