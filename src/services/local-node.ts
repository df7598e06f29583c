import { HostFacts } from './host-facts.js';
import type { NodeContext } from './node-context.js';
import { VmCreator } from './vm-create.js';
import { VmInventory } from './vm-inventory.js';
import { VmPower } from './vm-power.js';
import { nodeGetInfo } from '../adapters/libvirt/domain.js';
import { describeError } from '../errors.js';

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

  constructor(readonly ctx: NodeContext) {
    this.inventory = new VmInventory(ctx);
    this.facts = new HostFacts(ctx);
    this.creator = new VmCreator(ctx, this.facts, this.inventory);
    this.power = new VmPower(ctx, this.inventory);
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
