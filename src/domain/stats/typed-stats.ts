import type { StatValues } from './domstats.js';

/**
 * One VM's typed statistics parameters (virConnectGetAllDomainStats) read by name: a layout
 * (name → index), shared by every tick of VMs with the same devices, over this tick's values.
 * Reads like the Map `parseDomStats` gives, so the same functions turn either into figures.
 */
export class TypedStats implements StatValues {
  /** `values[offset + i]` is the parameter the layout numbers i (one array holds every VM of a tick). */
  constructor(readonly layout: ReadonlyMap<string, number>, readonly values: ArrayLike<number>, readonly offset = 0) {}

  get(key: string): number | undefined {
    const i = this.layout.get(key);
    return i === undefined ? undefined : this.values[this.offset + i];
  }

  has(key: string): boolean {
    return this.layout.has(key);
  }
}
