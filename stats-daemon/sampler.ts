import type { VmSample } from '../src/domain/stats/sample.js';

/** A source of samples: each call returns every running VM on the node at `nowMs`. */
export interface Sampler {
  readonly source: 'libvirt' | 'domstats' | 'virt-top';
  sample(nowMs: number): Promise<VmSample[]>;
  close(): Promise<void>;
}
